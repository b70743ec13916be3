package procedures_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// downStore refuses decisions and their reads while down, counting the
// attempts to record one.
type downStore struct {
	store.Store
	down    atomic.Bool
	decides atomic.Int64
}

var errDown = errors.New("store unreachable")

func (s *downStore) Decide(ctx context.Context, d store.Decision) (store.Decision, error) {
	if s.down.Load() {
		s.decides.Add(1)
		return store.Decision{}, errDown
	}
	return s.Store.Decide(ctx, d)
}

func (s *downStore) Decisions(ctx context.Context, runID string) ([]store.Decision, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.Decisions(ctx, runID)
}

// Past a checkpoint deadline with the store down, the timeout decision
// is retried with a pause, not in a busy loop; it lands once the store
// is back.
func TestDeadlineWithStoreDownBacksOff(t *testing.T) {
	h := newHarness(t, cluster3())
	h.policy = procedures.TimeoutAbort
	ds := &downStore{}
	h.restart(func(s store.Store) store.Store { ds.Store = s; return ds })
	h.startRun(upgrade())
	h.waitCheckpoint("verify")
	waitTimer(t, h.clock)
	ds.down.Store(true)
	h.clock.Advance(2 * time.Hour)
	time.Sleep(500 * time.Millisecond)
	if n := ds.decides.Load(); n < 1 || n > 10 {
		t.Fatalf("%d attempts to record the timeout decision in 500 ms", n)
	}
	ds.down.Store(false)
	if end := h.waitFinished(); end.State != store.StateAborted {
		t.Fatalf("state %s", end.State)
	}
}

// An abort that arrives as a repeatable step finishes leaves that step
// done: it was not interrupted.
func TestAbortAsStepFinishesKeepsItDone(t *testing.T) {
	h := newHarness(t, cluster3())
	hold := h.world.HoldOn("backup")
	r := h.startRun(upgrade())
	<-hold.Reached
	if err := h.eng.Cancel(context.Background(), r.ID, "U2", "test"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the engine has seen the abort
	hold.Release()
	end := h.waitFinished()
	var backup store.Step
	for _, s := range end.Steps {
		if s.Name == "backup" {
			backup = s
		}
	}
	if end.State != store.StateAborted || backup.Status != store.StepDone || strings.Contains(backup.Detail, "interrupted") {
		t.Fatalf("state %s, backup step %s %q", end.State, backup.Status, backup.Detail)
	}
	if procedures.FactsOf(end).BackupID() != "b1" {
		t.Fatalf("the finished backup was not recorded: %v", end.Facts)
	}
}

// collidingStore answers the first run ids with "already exists".
type collidingStore struct {
	store.Store
	collisions atomic.Int64
}

func (s *collidingStore) CreateRun(ctx context.Context, r store.Run) (store.Run, error) {
	if s.collisions.Add(-1) >= 0 {
		return store.Run{}, fmt.Errorf("run %s: %w", r.ID, store.ErrExists)
	}
	return s.Store.CreateRun(ctx, r)
}

// A run id that collides with a stored one is drawn again; ids carry six
// random characters.
func TestRunIDCollisionRetried(t *testing.T) {
	h := newHarness(t, cluster3())
	cs := &collidingStore{}
	cs.collisions.Store(2)
	h.restart(func(s store.Store) store.Store { cs.Store = s; return cs })
	r, err := h.eng.Start(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "U1"})
	if err != nil {
		t.Fatalf("start after two collisions: %v", err)
	}
	if len(r.ID) != len("r1121-")+6 {
		t.Fatalf("id %s", r.ID)
	}
}
