package backup

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// queueExtra stands in for the Redis queue part: what it saves is a
// fixed text, what it restores is kept, and its Restore fails while
// failures are left (as with Redis unreachable).
type queueExtra struct {
	mu       sync.Mutex
	failures int
	restored []string
}

func (q *queueExtra) Part() string                         { return "queue.test" }
func (q *queueExtra) Active(context.Context) (bool, error) { return true, nil }
func (q *queueExtra) Save(_ context.Context, w io.Writer) (string, error) {
	_, err := io.WriteString(w, "job-1\njob-2\n")
	return "queue: 2 jobs saved", err
}

func (q *queueExtra) Restore(_ context.Context, r io.Reader) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failures > 0 {
		q.failures--
		return "", errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	q.restored = append(q.restored, string(b))
	return "queue: 2 jobs put back", nil
}

func (q *queueExtra) restores() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.restored...)
}

func copyManagerWith(t *testing.T, f fixture, x Extra) *Manager {
	t.Helper()
	o := f.localOptions(t)
	o.NoCopy = false
	o.Extras = []Extra{x}
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A rollback by an in-server copy whose queue cannot be put back (Redis
// unreachable) says to retry, and the retry puts the queue back, without
// touching the restored database and storage again.
func TestRestoreRetriesTheQueueAfterTheCopyWasSwappedIn(t *testing.T) {
	f := copyFixture(t, 3, 50)
	q := &queueExtra{failures: 1}
	m := copyManagerWith(t, f, q)
	ctx := context.Background()
	dbBefore := dbSnapshot(t, f.dbURL)
	filesBefore := fileSnapshot(t, f.storage, DefaultExcludes)
	info := create(t, m, nil)
	if info.Kind != KindCopy {
		t.Fatalf("kind = %q", info.Kind)
	}
	migrateAndChange(t, f.dbURL)
	changeStorage(t, f.storage)

	err := m.Restore(ctx, info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "retry the restore") || strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore with the queue unreachable: %v", err)
	}
	t.Log(err)
	assertSame(t, "database after the first attempt", dbBefore, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage after the first attempt", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	if list, _ := m.List(ctx); len(list) != 1 || !strings.Contains(list[0].Holds, "unfinished") {
		t.Errorf("listing after the first attempt: %+v", list)
	}

	progress := &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("retry: %v\n%s", err, progress)
	}
	t.Log(progress)
	if got := q.restores(); len(got) != 1 || got[0] != "job-1\njob-2\n" {
		t.Errorf("queue put back %d times: %q", len(got), got)
	}
	if !strings.Contains(progress.String(), "queue: 2 jobs put back") {
		t.Errorf("progress:\n%s", progress)
	}
	assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	if list, _ := m.List(ctx); len(list) != 1 || strings.Contains(list[0].Holds, "unfinished") {
		t.Errorf("listing after the rollback: %+v", list)
	}
	// Finished: a further restore is refused and the queue is not reset.
	if err := m.Restore(ctx, info.ID, nil); err == nil || !strings.Contains(err.Error(), "storage only") {
		t.Errorf("restore of a finished swapped-in backup: %v", err)
	}
	if got := q.restores(); len(got) != 1 {
		t.Errorf("queue put back %d times", len(got))
	}
}

// Finishing a restore whose storage swap failed past the rename puts the
// queue back too (it comes after the storage).
func TestFinishingARestorePutsTheQueueBack(t *testing.T) {
	f := copyFixture(t, 3, 50)
	q := &queueExtra{}
	m := copyManagerWith(t, f, q)
	ctx := context.Background()
	filesBefore := fileSnapshot(t, f.storage, DefaultExcludes)
	info := create(t, m, nil)
	changeStorage(t, f.storage)
	unmount := mountOver(t, filepath.Join(f.storage, "mounted"))

	if err := m.Restore(ctx, info.ID, nil); err == nil || !strings.Contains(err.Error(), "database restored, but storage") {
		t.Fatalf("first attempt: %v", err)
	}
	if got := q.restores(); len(got) != 0 {
		t.Fatalf("queue put back before the storage: %q", got)
	}
	unmount()
	progress := &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("finishing: %v\n%s", err, progress)
	}
	t.Log(progress)
	assertSame(t, "storage", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	if got := q.restores(); len(got) != 1 || got[0] != "job-1\njob-2\n" {
		t.Errorf("queue after finishing the restore: %q", got)
	}
	if !strings.Contains(progress.String(), "queue: 2 jobs put back") {
		t.Errorf("progress:\n%s", progress)
	}
}
