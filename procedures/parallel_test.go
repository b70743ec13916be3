package procedures_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// startedWhileBlocked blocks app-2's health wait and reports which other
// nodes were started before it was released.
func startedWhileBlocked(t *testing.T, h *harness, blk *proctest.Block) []string {
	t.Helper()
	select {
	case <-blk.Reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("app-2 never waited healthy: %q", h.world.Actions())
	}
	// Give the other starts time to happen if they are going to.
	time.Sleep(200 * time.Millisecond)
	var out []string
	for _, a := range h.world.Actions() {
		if a == "start app-3" || a == "start app-4" {
			out = append(out, a)
		}
	}
	blk.Release()
	slices.Sort(out)
	return out
}

// After the first node, the rest start together (StartParallelism 0 =
// all) with NocoBase's upgrade skipped, each waited healthy; 1 keeps them
// one by one. The same in the upgrade, its roll-back and the first start.
func TestRestStartTogether(t *testing.T) {
	four := func(running bool) *proctest.World {
		return proctest.NewWorld(oldImage, running, "app-1", "app-2", "app-3", "app-4")
	}
	newHarness := func(t *testing.T, w *proctest.World) *harness {
		return newHarnessWith(t, w, func(c *procedures.Cluster) {
			c.NodeEnv, c.Migrations = w, procedures.MigrationsSkipSameVersion
		})
	}
	for _, par := range []int{0, 1} {
		want := []string{"start app-3", "start app-4"}
		if par == 1 {
			want = nil
		}
		t.Run("upgrade/"+map[int]string{0: "all", 1: "one"}[par], func(t *testing.T) {
			h := newHarness(t, four(true))
			h.parallel = par
			h.restart(nil)
			h.startRun(upgrade())
			blk := h.world.BlockOn("healthy app-2")
			h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
			if got := startedWhileBlocked(t, h, blk); !slices.Equal(got, want) {
				t.Fatalf("started while app-2 was starting: %q, want %q", got, want)
			}
			if end := h.waitFinished(); end.State != store.StateSucceeded {
				t.Fatalf("state %s: %s", end.State, end.Error)
			}
			checkSafe(t, h.world)
		})
		t.Run("rollback/"+map[int]string{0: "all", 1: "one"}[par], func(t *testing.T) {
			h := newHarness(t, four(true))
			h.parallel = par
			h.restart(nil)
			h.startRun(upgrade())
			cp := h.waitCheckpoint("verify")
			blk := h.world.BlockOn("healthy app-2")
			h.decide(cp, store.ActionRollback, "U2")
			if got := startedWhileBlocked(t, h, blk); !slices.Equal(got, want) {
				t.Fatalf("started while app-2 was starting: %q, want %q", got, want)
			}
			if end := h.waitFinished(); end.State != store.StateRolledBack {
				t.Fatalf("state %s: %s", end.State, end.Error)
			}
			checkSafe(t, h.world)
		})
		t.Run("first-start/"+map[int]string{0: "all", 1: "one"}[par], func(t *testing.T) {
			h := newHarness(t, four(false))
			h.parallel = par
			h.restart(nil)
			blk := h.world.BlockOn("healthy app-2")
			h.startRun(procedures.Request{Procedure: procedures.ProcStart})
			// After an install app-2 first runs the migrations it left, alone.
			if got := startedWhileBlocked(t, h, blk); len(got) > 0 {
				t.Fatalf("started while app-2 was starting: %q, want %q", got, want)
			}
			end := h.waitFinished()
			if end.State != store.StateSucceeded || !strings.Contains(end.Steps[4].Detail, "app-4 healthy") {
				t.Fatalf("state %s, start-rest %q", end.State, end.Steps[4].Detail)
			}
			checkSafe(t, h.world)
		})
	}
}
