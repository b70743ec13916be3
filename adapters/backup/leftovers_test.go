package backup

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// A copy backup whose manifest does not load (here a partial write) keeps
// its in-server copy through the next Export: it may be the only copy of
// the database. While a manifest is unreadable no copy is dropped, not
// even one without a folder; once it reads again, the orphan goes.
func TestExportKeepsTheCopyOfABackupWhoseManifestDoesNotLoad(t *testing.T) {
	f := copyFixture(t, 2, 50)
	o := f.localOptions(t)
	o.NoCopy = false
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := dbNameOf(t, f.dbURL)
	admin := connect(t, testenv.PostgresURL(t))
	orphan := copyName(name, "prod-20200101T000000Z")
	execSQL(t, admin, "CREATE DATABASE "+sqlIdent(orphan)+" TEMPLATE "+sqlIdent(name))

	damaged := create(t, m, nil)
	mp := filepath.Join(f.dest, damaged.ID, manifestName)
	whole, err := os.ReadFile(mp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mp, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	current := create(t, m, nil)
	progress := &lines{}
	if _, err := m.Export(ctx, current.ID, progress.add); err != nil {
		t.Fatal(err)
	}
	t.Log(progress)
	if got := databases(t, copyName(name, damaged.ID)); len(got) != 1 {
		t.Fatalf("the in-server copy of a backup whose manifest did not load was dropped: %v", got)
	}
	if got := databases(t, orphan); len(got) != 1 {
		t.Errorf("a copy was dropped while a manifest could not be read: %v", got)
	}

	if err := os.WriteFile(mp, whole, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if got := databases(t, orphan); len(got) != 0 {
		t.Errorf("copy without a backup left once every manifest reads: %v", got)
	}
	if _, err := m.Verify(ctx, damaged.ID); err != nil {
		t.Errorf("the backup whose manifest was repaired: %v", err)
	}
}
