// Package nbdata reads, checks and writes the backup files of NocoBase's
// Backup manager (@nocobase/plugin-backups): an .nbdata is a zip holding
// the database dump ("data"), "_metadata.json", the uploads
// ("uploads/…") and the app's "aes_key.dat", optionally encrypted as a
// whole (crypt.go). docs/nocobase.md describes the format with the
// plugin's source paths.
package nbdata

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MetadataVersion is what the Backup manager of 2.2 writes
// (managers/backup.js BACKUP_METADATA_VERSION).
const MetadataVersion = 2

// Metadata is _metadata.json (managers/backup.js #metadataBackup).
type Metadata struct {
	MetadataVersion   int      `json:"metadataVersion"`
	EnableFilesBackup bool     `json:"enableFilesBackup"`
	Version           string   `json:"version"`
	Description       string   `json:"description,omitempty"`
	CreatedBy         any      `json:"createdBy,omitempty"`
	Database          Database `json:"database"`
	// Plugins must be a list, even an empty one: the restore walks it.
	Plugins []Plugin `json:"plugins"`
}

// Database describes where the dump comes from.
type Database struct {
	Dialect     string `json:"dialect"`
	Toolchain   string `json:"toolchain,omitempty"`
	Underscored bool   `json:"underscored"`
	TablePrefix string `json:"tablePrefix,omitempty"`
	Schema      string `json:"schema,omitempty"`
	// Version is the server's "select version()".
	Version string `json:"version,omitempty"`
	// BackupClientVersion is "pg_dump --version" (or mysqldump's).
	BackupClientVersion string `json:"backupClientVersion,omitempty"`
}

// Plugin is one plugin enabled when the backup was taken.
type Plugin struct {
	Name        string `json:"name"`
	Version     string `json:"version,omitempty"`
	PackageName string `json:"packageName"`
}

// Target is the app a backup would be restored into: its NocoBase
// version and its database settings (DB_DIALECT, DB_UNDERSCORED,
// DB_TABLE_PREFIX, DB_SCHEMA).
type Target struct {
	Version     string
	Dialect     string
	Underscored bool
	TablePrefix string
	Schema      string
}

var leadingVersion = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// Check applies the Backup manager's own rules (managers/restore.js
// #assertMetadata, as its HTTP restore calls it: tolerant mode, so the
// database server's major version is not compared) and says in one line
// why a backup cannot go into t.
func (m Metadata) Check(t Target) error {
	if m.Version == "" {
		return fmt.Errorf("metadata names no NocoBase version")
	}
	if newer, err := newerThan(m.Version, t.Version); err != nil {
		return err
	} else if newer {
		return fmt.Errorf("backup is from NocoBase %s, newer than the app's %s: NocoBase restores no backup from a newer version (upgrade the app first)", m.Version, t.Version)
	}
	if m.Database.Dialect != t.Dialect {
		return fmt.Errorf("backup is of a %s database, the app runs on %s: NocoBase restores a backup only into the same dialect", orNone(m.Database.Dialect), orNone(t.Dialect))
	}
	if m.Database.Underscored != t.Underscored {
		return fmt.Errorf("backup has DB_UNDERSCORED=%t, the app %t: NocoBase refuses the mismatch", m.Database.Underscored, t.Underscored)
	}
	if m.Database.TablePrefix != t.TablePrefix {
		return fmt.Errorf("backup has table prefix %q, the app %q: NocoBase refuses the mismatch", m.Database.TablePrefix, t.TablePrefix)
	}
	if m.Database.Schema != t.Schema {
		return fmt.Errorf("backup is of schema %q, the app uses %q: NocoBase refuses the mismatch", orDefault(m.Database.Schema), orDefault(t.Schema))
	}
	return nil
}

// newerThan compares the x.y.z at the start of two versions, as the
// plugin does (semver.gt after cutting what follows x.y.z).
func newerThan(a, b string) (bool, error) {
	pa, ok := parseVersion(a)
	if !ok {
		return false, fmt.Errorf("backup's NocoBase version %q is not x.y.z", a)
	}
	pb, ok := parseVersion(b)
	if !ok {
		return false, fmt.Errorf("the app's NocoBase version %q is not x.y.z", b)
	}
	for i := range pa {
		if pa[i] != pb[i] {
			return pa[i] > pb[i], nil
		}
	}
	return false, nil
}

func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	m := leadingVersion.FindStringSubmatch(strings.TrimPrefix(strings.TrimSpace(v), "v"))
	if m == nil {
		return out, false
	}
	for i := range out {
		n, err := strconv.Atoi(m[i+1])
		if err != nil {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

func orNone(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}

func orDefault(s string) string {
	if s == "" {
		return "(default)"
	}
	return s
}

// SidecarSuffix ends the metadata file kept beside an .nbdata, as the
// Backup manager keeps one in its folder (utils.js METADATA_EXTENSION).
const SidecarSuffix = "_metadata.json"

// SidecarPath is the metadata file beside file.
func SidecarPath(file string) string {
	return strings.TrimSuffix(file, Extension) + SidecarSuffix
}
