package backup

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// On PostgreSQL 18 with its data on XFS made with reflink, the in-server
// copy is a clone: the plan says so, the backup's progress says so, the
// copy takes next to no room on the server's disk (its blocks are the
// live database's), and a restore swaps it in like any copy. Where
// scripts/test could not mount an XFS, the plan says why it copies.
func TestCloneOnPostgres18(t *testing.T) {
	base, fsType := testenv.Postgres18URL(t)
	f := fixture{dbURL: testenv.NewDatabaseOn(t, base), dest: filepath.Join(testenv.TempDir(t), "backups"),
		storage: filepath.Join(testenv.TempDir(t), "storage")}
	c := connect(t, f.dbURL)
	nocobaseLikeSchema(t, c, 5, 200)
	// 64 MB of rows: large beside what the copy itself writes (WAL, the
	// catalogs' changes).
	execSQL(t, c, `CREATE TABLE attachments_blob AS SELECT g AS id, repeat(md5(g::text), 30) AS body FROM generate_series(1, 64000) g`)
	c.Close(context.Background())
	nocobaseLikeStorage(t, f.storage)
	o := f.localOptions(t)
	o.NoCopy = false
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := m.Plan(ctx)
	t.Logf("plan on %s: %s", fsType, p.Reason)
	clone := fsType == "xfs"
	switch {
	case p.Kind != KindCopy:
		t.Fatalf("plan = %+v", p)
	case clone && (!p.copy.clone || !strings.Contains(p.Reason, "a clone (") || !strings.Contains(p.Reason, "on xfs")):
		t.Errorf("plan on xfs does not say it clones: %q", p.Reason)
	case !clone && (p.copy.clone || !strings.Contains(p.Reason, "not a clone")):
		t.Errorf("plan on %s does not say why it copies: %q", fsType, p.Reason)
	}

	pg := m.db.(*postgres)
	before, err := pg.serverRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dbBefore := dbSnapshot(t, f.dbURL)
	progress := &lines{}
	info := create(t, m, progress)
	if info.Kind != KindCopy {
		t.Fatalf("kind = %q\n%s", info.Kind, progress)
	}
	if clone && !strings.Contains(progress.String(), "database: cloned (file_copy_method = clone) in ") {
		t.Errorf("progress does not say the copy is a clone:\n%s", progress)
	}
	after, err := pg.serverRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	grew := before.free - after.free
	t.Logf("database %d MiB; the server's filesystem (%s) has %d MiB less free after the copy", before.dbSize>>20, after.fsType, grew>>20)
	if clone && grew > before.dbSize/2 {
		t.Errorf("the clone took %d MiB of the server's disk for a database of %d MiB: blocks not shared", grew>>20, before.dbSize>>20)
	}

	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database swapped back in", dbBefore, dbSnapshot(t, f.dbURL))
}

// Which copy the plan names, for each filesystem stat -f can report.
func TestChooseCopy(t *testing.T) {
	for _, c := range []struct {
		canClone bool
		fs       string
		clone    bool
		says     string
	}{
		{false, "xfs", false, "PostgreSQL 18 or newer would clone"},
		{true, "xfs", true, "where the filesystem was made with reflink"},
		{true, "btrfs", true, "shares the files' blocks"},
		{true, "zfs", true, "shares the files' blocks"},
		{true, "ext2/ext3", false, "ext2/ext3 cannot share blocks"},
		{true, "", false, "filesystem cannot be seen"},
	} {
		got := chooseCopy(c.canClone, c.fs)
		if got.clone != c.clone || !strings.Contains(got.why, c.says) {
			t.Errorf("chooseCopy(%v, %q) = %+v, want clone %v saying %q", c.canClone, c.fs, got, c.clone, c.says)
		}
	}
	if got := parseFSType("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 100 50 50 50% /\nfstype ext2/ext3\n"); got != "ext2/ext3" {
		t.Errorf("parseFSType = %q", got)
	}
}

// Where PATH's psql is Debian's wrapper, the tools are run from the newest
// client's folder (no Perl before every call); elsewhere PATH is used.
func TestDebianClientBin(t *testing.T) {
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql in PATH")
	}
	real, _ := filepath.EvalSymlinks(p)
	got := debianClientBin()
	if filepath.Base(real) != "pg_wrapper" {
		if got != "" {
			t.Errorf("psql is %s, not Debian's wrapper, yet the tools' folder is %q", real, got)
		}
		return
	}
	out, err := exec.Command(filepath.Join(got, "psql"), "--version").Output()
	if err != nil || !strings.Contains(string(out), "psql (PostgreSQL) "+filepath.Base(filepath.Dir(got))) {
		t.Errorf("tools' folder %q: psql --version = %q, %v", got, out, err)
	}
}
