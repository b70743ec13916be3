package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
)

// copyManager is a Manager that takes in-server copies of the fixture.
func copyManager(t *testing.T, f fixture) *Manager {
	t.Helper()
	o := f.localOptions(t)
	o.NoCopy = false
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mountOver puts a tmpfs on dir: renaming a mount point fails (EBUSY), as
// a storage swap that cannot move an entry does.
func mountOver(t *testing.T, dir string) (unmount func()) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	done := false
	unmount = func() {
		if !done {
			done = true
			_ = exec.Command("umount", "-l", dir).Run()
		}
	}
	t.Cleanup(unmount)
	return unmount
}

// A rollback whose storage swap fails after the copy was renamed into
// place is finished by restoring again: the database stays restored, the
// storage is put back, and no message says "nothing was changed" while
// something was. Afterwards the backup's listing says it holds the
// storage only.
func TestRestoreFinishesAfterStorageSwapFailedPastTheRename(t *testing.T) {
	f := copyFixture(t, 4, 100)
	m := copyManager(t, f)
	ctx := context.Background()
	dbBefore := dbSnapshot(t, f.dbURL)
	filesBefore := fileSnapshot(t, f.storage, DefaultExcludes)
	info := create(t, m, nil)
	if info.Kind != KindCopy {
		t.Fatalf("kind = %q", info.Kind)
	}
	migrateAndChange(t, f.dbURL)
	changeStorage(t, f.storage)
	unmount := mountOver(t, filepath.Join(f.storage, "mounted"))

	err := m.Restore(ctx, info.ID, nil)
	if err == nil {
		t.Fatal("a restore whose storage cannot be swapped succeeded")
	}
	t.Log(err)
	if msg := err.Error(); !strings.Contains(msg, "database restored, but storage") || strings.Contains(msg, "nothing was changed") || !strings.Contains(msg, "restore again") {
		t.Errorf("first attempt: %v", err)
	}
	assertSame(t, "database after the first attempt", dbBefore, dbSnapshot(t, f.dbURL))
	list, err := m.List(ctx)
	if err != nil || len(list) != 1 || !strings.Contains(list[0].Holds, "unfinished") {
		t.Errorf("listing after the first attempt: %+v, %v", list, err)
	}

	// Retry while the cause stays: still true, still not "nothing".
	progress := &lines{}
	err = m.Restore(ctx, info.ID, progress.add)
	if err == nil || strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "database is restored") {
		t.Errorf("second attempt: %v\n%s", err, progress)
	}
	t.Log(err)

	unmount()
	progress = &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("retry after the cause is gone: %v\n%s", err, progress)
	}
	t.Log(progress)
	assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	list, _ = m.List(ctx)
	if len(list) != 1 || !strings.Contains(list[0].Holds, "storage only") || strings.Contains(list[0].Holds, "unfinished") {
		t.Errorf("listing after the rollback: %+v", list)
	}
	// Once finished, the backup no longer holds a database: a restore is
	// refused, truthfully, and touches nothing.
	migrateAndChange(t, f.dbURL)
	changed := dbSnapshot(t, f.dbURL)
	err = m.Restore(ctx, info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "storage only") {
		t.Errorf("restore of a swapped-in backup: %v", err)
	}
	t.Log(err)
	assertSame(t, "database after a refused restore", changed, dbSnapshot(t, f.dbURL))
}

// nocobot killed between the renames and the manifest that records them:
// the next restore finds out from the server that the copy is the
// database now and puts the storage back.
func TestRestoreFinishesAfterAKillBetweenRenameAndManifest(t *testing.T) {
	f := copyFixture(t, 4, 100)
	m := copyManager(t, f)
	ctx := context.Background()
	dbBefore := dbSnapshot(t, f.dbURL)
	filesBefore := fileSnapshot(t, f.storage, DefaultExcludes)
	info := create(t, m, nil)
	migrateAndChange(t, f.dbURL)
	changeStorage(t, f.storage)

	// What swapInCopy does up to the kill: the pending swap recorded, the
	// renames committed, nothing recorded after.
	man := readManifest(t, f.dest, info.ID)
	c := m.db.(copier)
	old, _ := c.replacedName()
	man.Database.SwapPending = old
	if err := writeManifest(filepath.Join(f.dest, info.ID), &man); err != nil {
		t.Fatal(err)
	}
	if err := c.swapIn(ctx, man.Database.Copy, old); err != nil {
		t.Fatal(err)
	}

	progress := &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("restore after the kill: %v\n%s", err, progress)
	}
	t.Log(progress)
	assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	if got := readManifest(t, f.dest, info.ID); !got.Database.SwappedIn || got.StoragePending || got.Database.SwapPending != "" {
		t.Errorf("manifest after: %+v", got.Database)
	}

	// A pending swap that did not happen (the copy still there) is
	// forgotten, and the restore runs whole.
	info2 := create(t, m, nil)
	migrateAndChange(t, f.dbURL)
	man2 := readManifest(t, f.dest, info2.ID)
	man2.Database.SwapPending, _ = c.replacedName()
	if err := writeManifest(filepath.Join(f.dest, info2.ID), &man2); err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(ctx, info2.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database from the second backup", dbBefore, dbSnapshot(t, f.dbURL))
}

// A host-path storage swap that cannot clear the folder, nor put the old
// content back, keeps that content in the folder its message names.
func TestHostStorageSwapKeepsTheFolderItsMessageNames(t *testing.T) {
	f := newFixture(t, 1, 10)
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	info := create(t, m, nil)
	changeStorage(t, f.storage)
	changed := fileSnapshot(t, f.storage, DefaultExcludes)
	// Clearing fails at uploads (after apps went aside); putting apps
	// back fails too.
	m.rename = func(from, to string) error {
		switch {
		case filepath.Base(from) == "uploads" && strings.Contains(to, ".old"):
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrPermission}
		case filepath.Base(from) == "apps" && strings.Contains(from, ".old"):
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrPermission}
		}
		return os.Rename(from, to)
	}
	err = m.Restore(ctx, info.ID, nil)
	if err == nil {
		t.Fatal("restore succeeded")
	}
	t.Log(err)
	i := strings.Index(err.Error(), "it is in ")
	if i < 0 {
		t.Fatalf("the message names no folder: %v", err)
	}
	kept, _, _ := strings.Cut(err.Error()[i+len("it is in "):], ")")
	if _, err := os.Stat(filepath.Join(kept, "apps", "main", "jwt_secret.dat")); err != nil {
		t.Errorf("the folder the message names does not hold the content: %v", err)
	}
	// The person follows the message: moving it back gives the storage
	// as it was before the restore.
	if err := os.Rename(filepath.Join(kept, "apps"), filepath.Join(f.storage, "apps")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(kept); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "storage after putting it back by hand", changed, fileSnapshot(t, f.storage, DefaultExcludes))
}

// The same in the default deployment's storage: the helper container
// that swaps a node's storage folder fails (an entry it cannot move: a
// mount point) after the copy was swapped in; restoring again through a
// node whose storage it can change finishes the rollback.
func TestRestoreFinishesAfterTheHelperContainerFailed(t *testing.T) {
	e, host := engine(t)
	f := copyFixture(t, 2, 50)
	f.mtimePrec = time.Second // docker cp's tar streams carry whole seconds
	img := testenv.NodeImage(t, host, "2.2.15")
	node := testenv.RunNode(t, host, testenv.NodeSpec{Image: img, Mounts: []string{f.storage + ":" + DefaultStoragePath}, Created: true})
	o := f.localOptions(t)
	o.NoCopy, o.StorageHostPath, o.StorageContainer = false, "", node.Name
	m, err := New(o, e, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dbBefore := dbSnapshot(t, f.dbURL)
	filesBefore := fileSnapshotAt(t, f.storage, DefaultExcludes, f.mtimePrec)
	info := create(t, m, nil)
	if info.Kind != KindCopy {
		t.Fatalf("kind %s", info.Kind)
	}
	migrateAndChange(t, f.dbURL)
	changeStorage(t, f.storage)

	// A node whose storage holds a mount point: the helper cannot move it.
	nested := testenv.TempDir(t)
	blocked := testenv.RunNode(t, host, testenv.NodeSpec{Image: img, Created: true,
		Mounts: []string{f.storage + ":" + DefaultStoragePath, nested + ":" + DefaultStoragePath + "/mounted"}})
	ob := o
	ob.StorageContainer = blocked.Name
	mb, err := New(ob, e, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	err = mb.Restore(ctx, info.ID, nil)
	if err == nil || strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "database restored, but storage") {
		t.Fatalf("restore through the blocked helper: %v", err)
	}
	t.Log(err)
	assertSame(t, "database after the helper failed", dbBefore, dbSnapshot(t, f.dbURL))

	progress := &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("retry: %v\n%s", err, progress)
	}
	assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage", filesBefore, fileSnapshotAt(t, f.storage, DefaultExcludes, f.mtimePrec))
}
