package config

import (
	"strings"
	"testing"
)

// withBackup adds keys to the minimal configuration's backup section.
func withBackup(keys string) string {
	return strings.Replace(minimal, "backup: {destination: /b,", "backup: {destination: /b, "+keys+",", 1)
}

// Without the tuning keys the adapter's defaults apply: nothing is set,
// and in-server copies are on.
func TestBackupTuningDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Clusters[0].Backup
	if b.Jobs != 0 || b.Compress != "" || b.CompressLevel != nil || b.DumpFormat != "" || b.KeepCopy || !b.CopyInServer() {
		t.Fatalf("backup tuning without keys: %+v (in-server copy %v)", b, b.CopyInServer())
	}
}

func TestBackupTuningKeys(t *testing.T) {
	tests := []struct {
		keys  string
		check func(b Backup) bool
	}{
		{"jobs: 3", func(b Backup) bool { return b.Jobs == 3 }},
		{"compress: while", func(b Backup) bool { return b.Compress == "while" }},
		{"compress: never", func(b Backup) bool { return b.Compress == "never" }},
		{"compress: after", func(b Backup) bool { return b.Compress == "after" }},
		{"compress_level: 9", func(b Backup) bool { return b.CompressLevel != nil && *b.CompressLevel == 9 }},
		{"compress_level: 1", func(b Backup) bool { return b.CompressLevel != nil && *b.CompressLevel == 1 }},
		{"dump_format: stream", func(b Backup) bool { return b.DumpFormat == "stream" }},
		{"dump_format: stream, compress: while", func(b Backup) bool { return b.DumpFormat == "stream" && b.Compress == "while" }},
		{"dump_format: folder", func(b Backup) bool { return b.DumpFormat == "folder" }},
		{"in_server_copy: false", func(b Backup) bool { return !b.CopyInServer() }},
		{"in_server_copy: true", func(b Backup) bool { return b.CopyInServer() }},
		{"keep_copy: true", func(b Backup) bool { return b.KeepCopy && b.CopyInServer() }},
		{"copy_when_space_unknown: true", func(b Backup) bool { return b.CopyWhenSpaceUnknown && b.CopyInServer() }},
	}
	for _, tt := range tests {
		t.Run(tt.keys, func(t *testing.T) {
			c, err := Parse(strings.NewReader(withBackup(tt.keys)))
			if err != nil {
				t.Fatal(err)
			}
			if b := c.Clusters[0].Backup; !tt.check(b) {
				t.Fatalf("%s read as %+v", tt.keys, b)
			}
		})
	}
}

// A bad value is one line naming the key, its value and what is expected.
func TestBackupTuningInvalid(t *testing.T) {
	const f = "clusters[0] (prod).backup."
	tests := []struct{ keys, want string }{
		{"jobs: -1", f + "jobs: -1: expected 0 (the CPUs, at most 4) up to 32 (each worker holds a database connection)"},
		{"jobs: 33", f + "jobs: 33: expected 0 (the CPUs, at most 4) up to 32"},
		{"jobs: many", f + `jobs: expected a whole number, got "many"`},
		{"compress_level: 12", f + "compress_level: 12: expected 1 (fastest) to 9 (smallest)"},
		{"compress_level: -3", f + "compress_level: -3: expected 1 (fastest) to 9 (smallest)"},
		{"compress_level: 0", f + "compress_level: 0: expected 1 (fastest) to 9 (smallest); for no compression set compress: never"},
		{"compress: sometimes", f + `compress: "sometimes": expected after, while or never`},
		{"dump_format: tar", f + `dump_format: "tar": expected folder or stream`},
		{"dump_format: stream, compress: never", f + `compress: "never": a stream dump (dump_format: stream) is always compressed while written`},
		{"dump_format: stream, compress: after", f + `compress: "after": a stream dump`},
		{"in_server_copy: false, keep_copy: true", f + "keep_copy: true, but in_server_copy is false: there is no in-server copy to keep"},
		{"in_server_copy: sometimes", f + `in_server_copy: expected true or false, got "sometimes"`},
		{"in_server_copy: false, copy_when_space_unknown: true", f + "copy_when_space_unknown: true, but in_server_copy is false: no in-server copy is ever taken"},
		{"copy_when_space_unknown: maybe", f + `copy_when_space_unknown: expected true or false, got "maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.keys, func(t *testing.T) {
			c, err := Parse(strings.NewReader(withBackup(tt.keys)))
			if err == nil || c != nil {
				t.Fatalf("accepted: %+v", c)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error = %q\nwant one line containing %q", msg, tt.want)
			}
		})
	}
}
