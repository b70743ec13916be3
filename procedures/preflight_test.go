package procedures_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// A refused API key fails a maintain with plugin actions at preflight,
// naming the key's variable, before any node stops or any backup.
func TestRefusedKeyFailsPreflightBeforeDowntime(t *testing.T) {
	h := newHarness(t, cluster3())
	h.world.Fail("key-check", 1)
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "enable", Arg: "map"}}})
	cp := h.waitCheckpoint("failure")
	if q := cp.Checkpoint.Question; !strings.Contains(q, "Preflight") || !strings.Contains(q, "refused the NocoBase API key") || !strings.Contains(q, "NB_API_KEY") {
		t.Fatalf("question %q", q)
	}
	if cp.Steps[0].Status != store.StepFailed {
		t.Fatalf("failed step: %+v", cp.Steps[0])
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "stop") || strings.HasPrefix(a, "backup") || strings.HasPrefix(a, "plugin") {
			t.Fatalf("acted past a refused key: %q", h.world.Actions())
		}
	}
	if h.world.NodeState("app-2") != "running "+oldImage {
		t.Fatalf("app-2 %s", h.world.NodeState("app-2"))
	}
}

// Only runs with plugin actions ask for the key; the preflight says
// which kind of backup the run takes.
func TestKeyCheckedOnlyForPluginActions(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "backup"}}})
	cp := h.waitCheckpoint("verify")
	if slices.ContainsFunc(h.world.Actions(), func(a string) bool { return strings.HasPrefix(a, "key-check") }) {
		t.Fatalf("a run without plugin actions checked the key: %q", h.world.Actions())
	}
	if d := cp.Steps[0].Detail; !strings.Contains(d, "backup: dump inside the downtime") {
		t.Errorf("preflight detail %q", d)
	}
}

// A backup that cannot be taken fails the upgrade's preflight: the load
// balancer never switches and no node stops.
func TestBackupCheckFailsUpgradeBeforeDowntime(t *testing.T) {
	h := newHarness(t, cluster3())
	h.world.Fail("backup-check", 1)
	h.startRun(upgrade())
	cp := h.waitCheckpoint("failure")
	if !strings.Contains(cp.Checkpoint.Question, "a backup could not be taken") {
		t.Fatalf("question %q", cp.Checkpoint.Question)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "lb") || strings.HasPrefix(a, "stop") {
			t.Fatalf("downtime began: %q", h.world.Actions())
		}
	}
}
