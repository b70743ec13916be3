package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// Export keeps the in-server copy until the manifest naming the new dump
// is on disk: a manifest that cannot be written leaves the copy as the
// backup, and a retry exports it.
func TestExportKeepsTheCopyUntilTheManifestNamesTheDump(t *testing.T) {
	f := copyFixture(t, 3, 100)
	m := copyManager(t, f)
	ctx := context.Background()
	dbBefore := dbSnapshot(t, f.dbURL)
	info := create(t, m, nil)
	man := readManifest(t, f.dest, info.ID)
	dir := filepath.Join(f.dest, info.ID)
	// Once the dump is read back, the manifest's temporary file cannot be
	// created: a folder is there.
	block := filepath.Join(dir, manifestName+".tmp")
	blockOnce := func(line string) {
		if strings.Contains(line, "dumped and read back") {
			if err := os.Mkdir(block, 0o700); err != nil {
				t.Error(err)
			}
		}
	}
	_, err := m.Export(ctx, info.ID, blockOnce)
	if err == nil {
		t.Fatal("export without a manifest succeeded")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "copy is kept") {
		t.Errorf("err = %v", err)
	}
	if got := databases(t, man.Database.Copy); len(got) != 1 {
		t.Fatalf("the in-server copy is gone after a failed export: %v", got)
	}
	if got := readManifest(t, f.dest, info.ID); got.hasDatabaseDump() || got.liveCopy() == "" {
		t.Errorf("manifest after a failed export: %+v", got)
	}
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Errorf("the backup does not verify after a failed export: %v", err)
	}
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Export(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := databases(t, man.Database.Copy); len(got) != 0 {
		t.Errorf("copy not dropped by the retried export: %v", got)
	}
	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database restored from the exported dump", dbBefore, dbSnapshot(t, f.dbURL))
}

// What stopped runs leave in the database server is settled by the next
// run's Export: a copy whose CREATE DATABASE committed after its folder
// was removed is dropped, and a copy backup that no run recorded is
// exported (and its copy dropped); a backup an unfinished run needs is
// left alone.
func TestExportSettlesCopiesStoppedRunsLeft(t *testing.T) {
	f := copyFixture(t, 2, 50)
	protected := map[string]bool{}
	o := f.localOptions(t)
	o.NoCopy = false
	o.Protect = func(context.Context) (map[string]bool, error) { return protected, nil }
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := dbNameOf(t, f.dbURL)
	admin := connect(t, testenv.PostgresURL(t))
	orphan := copyName(name, "prod-20200101T000000Z")
	execSQL(t, admin, "CREATE DATABASE "+sqlIdent(orphan)+" TEMPLATE "+sqlIdent(name))

	unrecorded := create(t, m, nil)
	needed := create(t, m, nil)
	protected[needed.ID] = true
	current := create(t, m, nil)
	progress := &lines{}
	if _, err := m.Export(ctx, current.ID, progress.add); err != nil {
		t.Fatal(err)
	}
	t.Log(progress)
	if got := databases(t, orphan); len(got) != 0 {
		t.Errorf("copy without a backup left: %v", got)
	}
	u := readManifest(t, f.dest, unrecorded.ID)
	if !u.hasDatabaseDump() || u.liveCopy() != "" || len(databases(t, u.Database.Copy)) != 0 {
		t.Errorf("unrecorded copy backup not exported: %+v", u.Database)
	}
	n := readManifest(t, f.dest, needed.ID)
	if n.hasDatabaseDump() || len(databases(t, n.Database.Copy)) != 1 {
		t.Errorf("the backup an unfinished run needs was touched: %+v", n.Database)
	}
	if _, err := m.Verify(ctx, unrecorded.ID); err != nil {
		t.Error(err)
	}
}
