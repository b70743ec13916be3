package procedures_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// crashIn runs an upgrade until action begins, then stops the engine as
// a crash would, and waits until its lease has lapsed.
func crashIn(t *testing.T, h *harness, action string) store.Run {
	t.Helper()
	blk := h.world.BlockOn(action)
	r := h.startRun(upgrade())
	select {
	case <-blk.Reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("never reached %s: %q", action, h.world.Actions())
	}
	h.stop()
	time.Sleep(1100 * time.Millisecond) // the harness's lease is 1 s
	return r
}

// A command refused because a crashed run holds the cluster touches no
// run: the crashed run is neither adopted nor repeated.
func TestRefusedStartChangesNothing(t *testing.T) {
	h := newHarness(t, cluster3())
	r := crashIn(t, h, "backup")
	acts := len(h.world.Actions())
	h.own = true
	h.start(nil)
	before, _ := h.store.GetRun(context.Background(), r.ID)
	_, err := h.eng.Start(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcMaintain, Requester: "U9"})
	var busy *procedures.BusyError
	if !errors.As(err, &busy) || busy.Run.ID != r.ID {
		t.Fatalf("start = %v, want busy with %s", err, r.ID)
	}
	time.Sleep(300 * time.Millisecond) // many engine ticks
	after, _ := h.store.GetRun(context.Background(), r.ID)
	if len(h.world.Actions()) != acts || after.Owner != before.Owner || after.Steps[before.Current].Attempt != before.Steps[before.Current].Attempt || after.Checkpoint != nil {
		t.Fatalf("the refused command touched the run: actions %q, owner %s → %s, attempt %d → %d",
			h.world.Actions()[acts:], before.Owner, after.Owner, before.Steps[before.Current].Attempt, after.Steps[after.Current].Attempt)
	}
}

// A question is written with the cluster as it is, even while the
// engine that writes it is being stopped.
func TestQuestionDescribesClusterWhenCancelled(t *testing.T) {
	w := cluster3()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := procedures.DescribeCluster(ctx, w.Cluster("prod"))
	if !strings.Contains(got, "Nodes: app-1 running "+oldImage) || strings.Contains(got, "unknown") {
		t.Fatalf("described as %q", got)
	}
}

// A run interrupted before its downtime began asks before beginning it;
// nothing goes down until a person says so.
func TestResumeBeforeDowntimeAsks(t *testing.T) {
	h := newHarness(t, cluster3())
	crashIn(t, h, "backup-check")
	h.start(nil)
	cp := h.waitCheckpoint("resume")
	if !strings.Contains(cp.Checkpoint.Question, "restarted before the upgrade took the site down: start now, or abort") ||
		!slices.Equal(cp.Checkpoint.Options, []store.Action{store.ActionContinue, store.ActionAbort}) {
		t.Fatalf("question %q, options %v", cp.Checkpoint.Question, cp.Checkpoint.Options)
	}
	time.Sleep(200 * time.Millisecond)
	if slices.Contains(h.world.Actions(), "lb maintenance") {
		t.Fatalf("downtime began unattended: %q", h.world.Actions())
	}
	h.decide(cp, store.ActionContinue, "U1")
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	if end := h.waitFinished(); end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	checkSafe(t, h.world)
}
