package procedures_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// The switch to the maintenance page fails (a read-only flag folder, a
// webhook down): the roll-back must not stop nodes that serve users. Its
// first step tries the page again, fails, and the run asks, with every
// node still serving.
func TestRollbackNeverStopsNodesUnderTraffic(t *testing.T) {
	h := newHarness(t, cluster3())
	h.world.Fail("lb maintenance", 2)
	h.startRun(upgrade())
	h.decide(h.waitCheckpoint("failure"), store.ActionRollback, "U2")
	cp := h.waitCheckpoint("failure")
	if st := cp.Steps[cp.Current]; st.Name != "rb-lb-maintenance" || !strings.Contains(cp.Checkpoint.Question, "Traffic: to the app nodes") {
		t.Fatalf("roll-back stopped at %s: %q", st.Name, cp.Checkpoint.Question)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "stop ") || strings.HasPrefix(a, "restore ") {
			t.Fatalf("%s with traffic on the nodes: %q", a, h.world.Actions())
		}
	}
	for _, n := range []string{"app-1", "app-2", "app-3"} {
		if got := h.world.NodeState(n); got != "running "+oldImage {
			t.Fatalf("%s is %s", n, got)
		}
	}
	checkSafe(t, h.world)
}

// A maintain roll-back puts up the page before it stops the node that
// serves, and takes it down only when every node is healthy again.
func TestMaintainRollbackBehindMaintenancePage(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "backup"}}})
	h.decide(h.waitCheckpoint("verify"), store.ActionRollback, "U2")
	if end := h.waitFinished(); end.State != store.StateRolledBack {
		t.Fatalf("state %s", end.State)
	}
	acts := h.world.Actions()
	page, stop, back := slices.Index(acts, "lb maintenance"), slices.Index(acts, "stop app-1"), slices.Index(acts, "lb normal")
	if page < 0 || stop < page || back < slices.Index(acts, "healthy app-3") {
		t.Fatalf("roll-back order: %q", acts)
	}
	if h.world.LB() != ports.LBNormal {
		t.Fatalf("traffic left on %s", h.world.LB())
	}
	checkSafe(t, h.world)
}
