package procedures_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

// A node recorded at preflight that goes missing stops the run at a
// decision naming it: the upgrade never carries on with fewer nodes.
func TestRecordedNodeNeverDropped(t *testing.T) {
	h := newHarness(t, cluster3())
	blk := h.world.BlockOn("backup")
	h.startRun(upgrade())
	<-blk.Reached
	h.world.Remove("app-2")
	blk.Release()
	cp := h.waitCheckpoint("failure")
	q := cp.Checkpoint.Question
	if !strings.Contains(q, "app-2, recorded at preflight, cannot be found") || cp.Steps[cp.Current].Name != "set-image" {
		t.Fatalf("step %s, question %q", cp.Steps[cp.Current].Name, q)
	}
	if slices.ContainsFunc(h.world.Actions(), func(a string) bool { return strings.HasPrefix(a, "set-image") }) {
		t.Fatalf("images changed on a partial cluster: %q", h.world.Actions())
	}
}

// The summary's node list is checked against the preflight record: a
// node gone by the end keeps the run from succeeding.
func TestRunEndsOnlyWithRecordedNodes(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(upgrade())
	blk := h.world.BlockOn("lb normal")
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	select {
	case <-blk.Reached:
	case <-time.After(10 * time.Second):
		t.Fatal("never reached lb normal")
	}
	h.world.Remove("app-3")
	blk.Release()
	cp := h.waitCheckpoint("failure")
	if !strings.Contains(cp.Checkpoint.Question, "app-3, recorded at preflight, cannot be found") || cp.State != store.StateFailed {
		t.Fatalf("state %s, question %q", cp.State, cp.Checkpoint.Question)
	}
}

// Retrying the start of a node stuck in APP_ERROR restarts it, the
// usual cure, instead of waiting on the broken process again.
func TestRetryRestartsNodeInAppError(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(upgrade())
	cp := h.waitCheckpoint("verify")
	h.world.Break("app-2")
	h.decide(cp, store.ActionContinue, "U2")
	fail := h.waitCheckpoint("failure")
	if !strings.Contains(fail.Checkpoint.Question, "APP_ERROR") {
		t.Fatalf("question %q", fail.Checkpoint.Question)
	}
	n := len(h.world.Actions())
	h.decide(fail, store.ActionRetry, "U2")
	if end := h.waitFinished(); end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	after := h.world.Actions()[n:]
	if i := slices.Index(after, "stop app-2"); i < 0 || !slices.Contains(after[i:], "start app-2") {
		t.Fatalf("app-2 was not restarted on retry: %q", after)
	}
	checkSafe(t, h.world)
}
