package procedures_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

func stepOf(t *testing.T, r store.Run, name string) store.Step {
	t.Helper()
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("run has no step %s", name)
	return store.Step{}
}

// An in-server copy is the backup inside the downtime; its portable dump
// is exported only after the load balancer is back, and the downtime the
// run reports ends before the export.
func TestCopyBackupExportedAfterTrafficIsBack(t *testing.T) {
	w := cluster3()
	w.TakeCopies(true, "no session on the database")
	h := newHarness(t, w)
	h.startRun(upgrade())
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	blk := w.BlockOn("export")
	select {
	case <-blk.Reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("no export; actions %q", w.Actions())
	}
	if w.LB() != ports.LBNormal {
		t.Fatal("export began while traffic was on the maintenance page")
	}
	h.clock.Advance(5 * time.Minute) // a long export
	blk.Release()
	end := h.waitFinished()
	checkSafe(t, w)
	want := upgradeAfterContinue // ends with "export b1"
	got := w.Actions()
	if !slices.Equal(got[len(got)-len(want):], want) {
		t.Fatalf("actions end with %q, want %q", got[len(got)-len(want):], want)
	}
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s", end.State)
	}
	if s := stepOf(t, end, "backup"); !strings.Contains(s.Detail, "in-server copy") {
		t.Errorf("backup step says %q", s.Detail)
	}
	if s := stepOf(t, end, "export"); s.Status != store.StepDone || !strings.Contains(s.Detail, "b1 exported") {
		t.Errorf("export step %s: %q", s.Status, s.Detail)
	}
	if d, ok := procedures.Downtime(end); !ok || d >= 5*time.Minute {
		t.Errorf("downtime %s (known %v) includes the export", d, ok)
	}
	if !procedures.FactsOf(end).Exported() {
		t.Error("the run does not record the export")
	}
}

// A dump is portable already: it is only finished (compressed, where it
// was written uncompressed) once traffic is back.
func TestDumpBackupIsFinishedAfterTrafficIsBack(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(upgrade())
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	end := h.waitFinished()
	acts := h.world.Actions()
	ex := slices.IndexFunc(acts, func(a string) bool { return strings.HasPrefix(a, "export") })
	if ex < 0 || ex < slices.Index(acts, "lb normal") {
		t.Fatalf("the dump was not finished after traffic was back: %q", acts)
	}
	if v := h.world.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
	if s := stepOf(t, end, "export"); s.Status != store.StepDone || !strings.Contains(s.Detail, "a dump already") {
		t.Errorf("export step %s: %q", s.Status, s.Detail)
	}
}

// A copy that fails to export stops the run with traffic back on, and a
// retry exports it.
func TestFailedExportRetries(t *testing.T) {
	w := cluster3()
	w.TakeCopies(true, "no session on the database")
	h := newHarness(t, w)
	h.startRun(upgrade())
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	w.Fail("export", 1)
	cp := h.waitCheckpoint("failure")
	if !strings.Contains(cp.Checkpoint.Question, "traffic is back") || w.LB() != ports.LBNormal {
		t.Fatalf("question %q, lb %s", cp.Checkpoint.Question, w.LB())
	}
	// Users write again: a roll back would throw their writes away.
	if slices.Contains(cp.Checkpoint.Options, store.ActionRollback) {
		t.Fatalf("a failed export offers roll back: %v", cp.Checkpoint.Options)
	}
	h.decide(cp, store.ActionRetry, "U2")
	if end := h.waitFinished(); end.State != store.StateSucceeded {
		t.Fatalf("after retry: %s", end.State)
	}
}

// The plan says which kind of backup the run takes, and why.
func TestPlanNamesTheBackupKind(t *testing.T) {
	w := cluster3()
	h := newHarness(t, w)
	req := procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "U1"}
	p, err := h.eng.Plan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p, "Backup: dump inside the downtime (the server refuses copies)") {
		t.Errorf("plan with dumps:\n%s", p)
	}
	// The nodes run now; the copy is taken once they are stopped.
	w.TakeCopies(true, "no session on the database once the nodes stop")
	if p, _ = h.eng.Plan(context.Background(), req); !strings.Contains(p, "Backup: in-server copy of the database (no session on the database once the nodes stop)") ||
		!strings.Contains(p, "Export the backup (portable dump) outside the downtime") {
		t.Errorf("plan with copies:\n%s", p)
	}
	// A maintain keeps one node running: its backup is a dump.
	p, _ = h.eng.Plan(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcMaintain, Requester: "U1"})
	if !strings.Contains(p, "Backup: dump inside the downtime (app-1 is connected") {
		t.Errorf("maintain plan:\n%s", p)
	}
	if len(w.Actions()) != 0 {
		t.Fatalf("plan acted: %q", w.Actions())
	}
}
