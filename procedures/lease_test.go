package procedures_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// cutStore is a replica's store whose connection can be cut: every call
// fails while cut, as a lost database connection makes it.
type cutStore struct {
	store.Store
	cut atomic.Bool
}

var errCut = errors.New("connection to the store lost")

func (c *cutStore) ClaimRun(ctx context.Context, id, owner string, until time.Time) (store.Run, error) {
	if c.cut.Load() {
		return store.Run{}, errCut
	}
	return c.Store.ClaimRun(ctx, id, owner, until)
}

func (c *cutStore) UpdateRun(ctx context.Context, r store.Run) error {
	if c.cut.Load() {
		return errCut
	}
	return c.Store.UpdateRun(ctx, r)
}

func (c *cutStore) GetRun(ctx context.Context, id string) (store.Run, error) {
	if c.cut.Load() {
		return store.Run{}, errCut
	}
	return c.Store.GetRun(ctx, id)
}

func (c *cutStore) Decisions(ctx context.Context, id string) ([]store.Decision, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Store.Decisions(ctx, id)
}

func (c *cutStore) UnfinishedRuns(ctx context.Context) ([]store.Run, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Store.UnfinishedRuns(ctx)
}

// Two processes on one SQLite file. Replica A loses its store in the
// middle of the backup: it must stop before B may take the run over, and
// do nothing more once B has begun.
func TestLapsedLeaseStopsItsHolderFirstSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	w := proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3")
	const ttl = time.Second
	startEngine := func(name string, wrap func(store.Store) store.Store) *procedures.Engine {
		s, err := sqlite.Open(context.Background(), path, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		var st store.Store = s
		if wrap != nil {
			st = wrap(s)
		}
		eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{w.As(name, "prod")},
			Log:   zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel).With().Str("engine", name).Logger(),
			Owner: name, LeaseTTL: ttl, PollEvery: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = eng.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done; s.Close() })
		time.Sleep(10 * time.Millisecond)
		return eng
	}
	var cutA *cutStore
	a := startEngine("A", func(s store.Store) store.Store { cutA = &cutStore{Store: s}; return cutA })
	blk := w.BlockOn("backup")
	req := upgrade()
	req.Cluster, req.Requester = "prod", "U1"
	r, err := a.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	<-blk.Reached
	cutA.cut.Store(true)
	cutAt := time.Now()
	startEngine("B", nil)

	// B takes the run over once A's lease has lapsed, repeats the backup
	// and goes on to the verify checkpoint.
	waitRun(t, path, r.ID, 20*time.Second, func(r store.Run) bool {
		return r.Owner == "B" && r.Checkpoint != nil && r.Checkpoint.Kind == "verify"
	})
	blk.Release()
	time.Sleep(3 * ttl) // whatever A would still do, it has done by now
	cutA.cut.Store(false)
	time.Sleep(3 * ttl)

	if late := w.ActedAfterTakeover("A", "B"); len(late) > 0 {
		t.Fatalf("A acted after B took the run over: %+v\nlog: %+v", late, w.Log())
	}
	log := w.Log()
	var aStopped, bFirst time.Time
	for _, e := range log {
		if e.Who == "A" && e.Action == "returned: backup" {
			aStopped = e.At
		}
		if e.Who == "B" && bFirst.IsZero() {
			bFirst = e.At
		}
	}
	if aStopped.IsZero() || aStopped.Sub(cutAt) > ttl {
		t.Errorf("A's backup returned %s after the cut, want within the lease time %s", aStopped.Sub(cutAt), ttl)
	}
	if bFirst.Sub(cutAt) < ttl/2 {
		t.Errorf("B began %s after the cut, before A's lease could lapse", bFirst.Sub(cutAt))
	}
	checkSafe(t, w)
}

// waitRun reads the run from the store file until ok says so.
func waitRun(t *testing.T, path, id string, within time.Duration, ok func(store.Run) bool) store.Run {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(within)
	var r store.Run
	for time.Now().Before(deadline) {
		if r, err = s.GetRun(context.Background(), id); err == nil && ok(r) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %s: not there within %s: state %s, owner %s, checkpoint %+v, err %v", id, within, r.State, r.Owner, r.Checkpoint, err)
	return r
}
