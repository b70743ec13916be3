package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
)

// copyFixture is a NocoBase-shaped database and storage with no session
// left open on the database, as while every node is stopped.
func copyFixture(t *testing.T, tables, rows int) fixture {
	t.Helper()
	f := fixture{dbURL: testenv.NewDatabase(t), dest: filepath.Join(testenv.TempDir(t), "backups")}
	f.storage = filepath.Join(testenv.TempDir(t), "storage")
	c := connect(t, f.dbURL)
	nocobaseLikeSchema(t, c, tables, rows)
	c.Close(context.Background())
	nocobaseLikeStorage(t, f.storage)
	name := dbNameOf(t, f.dbURL)
	t.Cleanup(func() {
		admin := connect(t, testenv.PostgresURL(t))
		for _, d := range databases(t, name+`\_nbcopy\_%`) {
			execSQL(t, admin, "DROP DATABASE "+sqlIdent(d)+" WITH (FORCE)")
		}
	})
	return f
}

func databases(t *testing.T, like string) []string {
	t.Helper()
	c := connect(t, testenv.PostgresURL(t))
	defer c.Close(context.Background())
	rows, err := c.Query(context.Background(), `SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1`, like)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// Inside the 503 period, with no session on the database, the backup is an
// in-server copy, verified, and a restore swaps it in by renaming; after
// traffic is back, Export takes the portable dump from the copy and drops
// it.
func TestInServerCopyBackupAndSwapRestore(t *testing.T) {
	f := copyFixture(t, 10, 200)
	o := f.localOptions(t)
	o.NoCopy = false
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dbName := m.db.name()

	// A node still connected: no copy, and the plan says why.
	busy := connect(t, f.dbURL)
	if p := m.Plan(ctx); p.Kind != KindDump || !strings.Contains(p.Reason, "session") {
		t.Errorf("plan with a session open = %+v", p)
	}
	busy.Close(ctx)
	if p := m.Plan(ctx); p.Kind != KindCopy {
		t.Fatalf("plan with no session = %+v", p)
	} else if !strings.Contains(p.Reason, "a file copy (CREATE DATABASE … STRATEGY FILE_COPY)") {
		t.Errorf("plan does not say which copy the server makes: %q", p.Reason)
	}

	dbBefore := dbSnapshot(t, f.dbURL)
	filesBefore := fileSnapshot(t, f.storage, DefaultExcludes)
	progress := &lines{}
	info := create(t, m, progress)
	if info.Kind != KindCopy {
		t.Fatalf("kind = %q\n%s", info.Kind, progress)
	}
	man := readManifest(t, f.dest, info.ID)
	if man.Database.Copy == "" || !strings.Contains(man.Database.CopySignature, "relations") || len(man.Parts) != 1 {
		t.Errorf("manifest = %+v", man)
	}
	if got := databases(t, man.Database.Copy); len(got) != 1 {
		t.Fatalf("copy %s not in the server: %v", man.Database.Copy, got)
	}
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Fatal(err)
	}

	migrateAndChange(t, f.dbURL)
	changeStorage(t, f.storage)
	changed := dbSnapshot(t, f.dbURL)

	// A session on the database (a node that was not stopped): the swap
	// terminates nothing and changes nothing.
	busy = connect(t, f.dbURL)
	err = m.Restore(ctx, info.ID, nil)
	busy.Close(ctx)
	if err == nil {
		t.Fatal("swap with a session open succeeded")
	}
	t.Log(err)
	assertSame(t, "database after a refused swap", changed, dbSnapshot(t, f.dbURL))

	start := time.Now()
	progress = &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("restore: %v\n%s", err, progress)
	}
	t.Logf("restore by swap took %s", time.Since(start))
	assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	// The replaced database is kept through the downtime and dropped by
	// retention afterwards.
	if got := databases(t, dbName+`\_nbcopy\_%`); len(got) != 1 || !strings.HasPrefix(got[0], replacedPrefix(dbName)) {
		t.Errorf("databases after the swap: %v", got)
	}
	if _, err := m.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if got := databases(t, dbName+`\_nbcopy\_%`); len(got) != 0 {
		t.Errorf("databases left after retention: %v", got)
	}

	// Second backup, exported after "traffic is back": a dump from the
	// copy, the copy dropped, and the dump restores.
	info2 := create(t, m, nil)
	if info2.Kind != KindCopy {
		t.Fatalf("kind = %q", info2.Kind)
	}
	live := connect(t, f.dbURL) // traffic is back: sessions do not matter to Export
	defer live.Close(ctx)
	exported, err := m.Export(ctx, info2.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	live.Close(ctx)
	man2 := readManifest(t, f.dest, info2.ID)
	if !man2.hasDatabaseDump() || !man2.Database.CopyGone || exported.Size <= info2.Size {
		t.Errorf("after export: %+v", man2)
	}
	if got := databases(t, man2.Database.Copy); len(got) != 0 {
		t.Errorf("copy not dropped: %v", got)
	}
	if _, err := m.Verify(ctx, info2.ID); err != nil {
		t.Fatal(err)
	}
	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, info2.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database restored from the exported dump", dbBefore, dbSnapshot(t, f.dbURL))
	if _, err := m.Export(ctx, info.ID, nil); err == nil {
		t.Error("export of a backup whose copy was swapped in succeeded")
	}
}

// A folder dump is restored in parallel into a fresh database that is
// swapped in only when pg_restore succeeded: a data file that breaks in
// the middle (damage the checksums did not see) changes nothing and
// leaves no database behind.
func TestFolderRestoreIsAllOrNothing(t *testing.T) {
	f := newFixture(t, 5, 300)
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info := create(t, m, nil)
	man := readManifest(t, f.dest, info.ID)
	if !man.hasDirDump() || man.Kind != KindDump {
		t.Fatalf("not a folder dump: %+v", man.Parts)
	}
	migrateAndChange(t, f.dbURL)
	changed := dbSnapshot(t, f.dbURL)

	dir := filepath.Join(f.dest, info.ID)
	p := largestDataFile(t, dir)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = b[:len(b)*3/4]
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	for i := range man.Parts {
		if filepath.Join(dir, man.Parts[i].Name) == p {
			man.Parts[i].Size, man.Parts[i].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
		}
	}
	if err := writeManifest(dir, &man); err != nil {
		t.Fatal(err)
	}
	err = m.Restore(context.Background(), info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
	assertSame(t, "database after a failed restore", changed, dbSnapshot(t, f.dbURL))
	if got := databases(t, man.Database.Name+`\_nbcopy\_%`); len(got) != 0 {
		t.Errorf("databases left: %v", got)
	}
}

func largestDataFile(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, partDatabaseDir))
	if err != nil {
		t.Fatal(err)
	}
	best, size := "", int64(-1)
	for _, e := range entries {
		if fi, _ := e.Info(); isTableData(strings.TrimSuffix(e.Name(), ".gz")) && fi.Size() > size {
			best, size = filepath.Join(dir, partDatabaseDir, e.Name()), fi.Size()
		}
	}
	return best
}
