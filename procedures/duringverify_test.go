package procedures_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// Start during verify: the other nodes start while the verify checkpoint
// waits, traffic on the maintenance page until every node is healthy.

func on() *bool { b := true; return &b }

// earlyCluster is three nodes on 2.2.14 with their own environments, so
// that the others start together with SKIP_SAME_VERSION_UPGRADE.
func earlyCluster(t *testing.T) (*proctest.World, *harness) {
	w := proctest.NewWorld("nocobase/nocobase:2.2.14", true, "app-1", "app-2", "app-3")
	return w, newHarnessWith(t, w, ownEnv(w, ""))
}

func earlyUpgrade() procedures.Request {
	return procedures.Request{Procedure: procedures.ProcUpgrade, Version: "2.2.15", StartDuringVerify: on()}
}

// waitEarlyEnd waits for the checkpoint's line saying the others are
// healthy (or not).
func (h *harness) waitEarlyEnd() string {
	h.t.Helper()
	return h.waitFor("the start during the check to end", func(ev events.Event) bool {
		return ev.Kind == events.StepProgress && (strings.Contains(ev.Message, "continue sends traffic back at once") ||
			strings.Contains(ev.Message, "did not all start"))
	}).Message
}

const new2215 = "nocobase/nocobase:2.2.15"

func TestStartDuringVerifyContinueAfterHealthy(t *testing.T) {
	w, h := earlyCluster(t)
	h.startRun(earlyUpgrade())
	cp := h.waitCheckpoint("verify")
	if q := cp.Checkpoint.Question; !strings.Contains(q, "Start during verify is on") || !strings.Contains(q, "roll back or abort stops them") {
		t.Errorf("the question does not say the option is on: %q", q)
	}
	if msg := h.waitEarlyEnd(); !strings.Contains(msg, "app-2 healthy on 2.2.15") || !strings.Contains(msg, "app-3 healthy on 2.2.15") {
		t.Errorf("end of the early start: %q", msg)
	}
	// Every node serves the new version, and users still see the page.
	for _, n := range []string{"app-1", "app-2", "app-3"} {
		if s := w.NodeState(n); s != "running "+new2215 {
			t.Errorf("%s at the checkpoint: %s", n, s)
		}
	}
	if w.LB() != ports.LBMaintenance {
		t.Fatalf("traffic at the checkpoint: %s", w.LB())
	}
	before := len(w.Actions())
	h.decide(cp, store.ActionContinue, "U2")
	end := h.waitFinished()
	if end.State != store.StateSucceeded || w.LB() != ports.LBNormal {
		t.Fatalf("state %s, traffic %s: %s", end.State, w.LB(), end.Error)
	}
	// Continue only confirmed the nodes: none was stopped, started on a
	// changed environment or waited for again from scratch.
	for _, a := range w.Actions()[before:] {
		if strings.HasPrefix(a, "stop ") || strings.HasPrefix(a, "set-env ") {
			t.Errorf("after continue: %s (all: %q)", a, w.Actions()[before:])
		}
	}
	if d := forwardDetail(end, "start-rest"); !strings.Contains(d, "during the check; all healthy at continue") {
		t.Errorf("start-rest detail: %q", d)
	}
	checkSafe(t, w)
}

func TestStartDuringVerifyContinueBeforeHealthy(t *testing.T) {
	w, h := earlyCluster(t)
	blk := w.BlockOn("healthy app-2")
	h.startRun(earlyUpgrade())
	cp := h.waitCheckpoint("verify")
	<-blk.Reached
	h.decide(cp, store.ActionContinue, "U2")
	h.waitFor("start-rest waiting", func(ev events.Event) bool {
		return ev.Kind == events.StepStarted && strings.Contains(ev.Message, "started during the check")
	})
	if w.LB() != ports.LBMaintenance {
		t.Fatalf("traffic back before app-2 is healthy: %s", w.LB())
	}
	blk.Release()
	end := h.waitFinished()
	if end.State != store.StateSucceeded || w.LB() != ports.LBNormal {
		t.Fatalf("state %s, traffic %s: %s", end.State, w.LB(), end.Error)
	}
	// "… after continue"; "at continue" when a lapsed lease on a loaded
	// machine made the engine take the run up again meanwhile.
	if d := forwardDetail(end, "start-rest"); !strings.Contains(d, "during the check; all healthy") {
		t.Errorf("start-rest detail: %q", d)
	}
	if n := count(w.Actions(), "set-env app-2 SKIP_SAME_VERSION_UPGRADE=true"); n != 1 {
		t.Errorf("app-2 re-created %d times", n)
	}
	checkSafe(t, w)
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

func TestStartDuringVerifyRollbackWhileStarting(t *testing.T) {
	w, h := earlyCluster(t)
	blk := w.BlockOn("healthy app-3")
	h.startRun(earlyUpgrade())
	cp := h.waitCheckpoint("verify")
	<-blk.Reached
	h.decide(cp, store.ActionRollback, "U2")
	end := h.waitFinished()
	if end.State != store.StateRolledBack {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	if w.DBVersion() != "2.2.14" || w.LB() != ports.LBNormal {
		t.Fatalf("db %s traffic %s", w.DBVersion(), w.LB())
	}
	for _, n := range []string{"app-1", "app-2", "app-3"} {
		if s := w.NodeState(n); s != "running nocobase/nocobase:2.2.14" {
			t.Errorf("%s after the roll back: %s", n, s)
		}
	}
	checkSafe(t, w)
}

func TestStartDuringVerifyAbortStopsThem(t *testing.T) {
	w, h := earlyCluster(t)
	blk := w.BlockOn("healthy app-3")
	h.startRun(earlyUpgrade())
	cp := h.waitCheckpoint("verify")
	<-blk.Reached
	h.decide(cp, store.ActionAbort, "U2")
	end := h.waitFinished()
	if end.State != store.StateAborted {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	// As an abort without the option leaves it: the first node on the new
	// version, the others stopped, users on the maintenance page.
	if s := w.NodeState("app-1"); s != "running "+new2215 {
		t.Errorf("app-1: %s", s)
	}
	for _, n := range []string{"app-2", "app-3"} {
		if s := w.NodeState(n); strings.HasPrefix(s, "running") {
			t.Errorf("%s after the abort: %s", n, s)
		}
	}
	if w.LB() != ports.LBMaintenance {
		t.Errorf("traffic after the abort: %s", w.LB())
	}
	if fs := procedures.FactsOf(end).FinalState(); !strings.Contains(fs, "app-2 exited") {
		t.Errorf("final state: %q", fs)
	}
	checkSafe(t, w)
}

// A restart while the others start: the new engine starts them again at
// the same checkpoint (each once), and continue finishes the upgrade.
func TestStartDuringVerifyCrashWhileStarting(t *testing.T) {
	w, h := earlyCluster(t)
	blk := w.BlockOn("healthy app-2")
	r := h.startRun(earlyUpgrade())
	h.waitCheckpoint("verify")
	<-blk.Reached
	h.restart(nil)
	rec, err := h.store.GetRun(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.StateWaiting || rec.Checkpoint == nil || rec.Checkpoint.Kind != "verify" {
		t.Fatalf("after the restart: %s %+v", rec.State, rec.Checkpoint)
	}
	h.waitEarlyEnd()
	if w.LB() != ports.LBMaintenance {
		t.Fatalf("traffic before continue: %s", w.LB())
	}
	h.decide(rec, store.ActionContinue, "U2")
	end := h.waitFinished()
	if end.State != store.StateSucceeded || w.LB() != ports.LBNormal {
		t.Fatalf("state %s, traffic %s: %s", end.State, w.LB(), end.Error)
	}
	for _, n := range []string{"app-2", "app-3"} {
		if s := w.NodeState(n); s != "running "+new2215 {
			t.Errorf("%s: %s", n, s)
		}
	}
	checkSafe(t, w)
}

// A restart after an abort was recorded but before it was applied: the
// new engine applies it without starting anything first.
func TestStartDuringVerifyAbortRecordedBeforeRestart(t *testing.T) {
	w, h := earlyCluster(t)
	r := h.startRun(earlyUpgrade())
	cp := h.waitCheckpoint("verify")
	h.waitEarlyEnd()
	h.stop()
	// The decision lands in the store while no engine runs.
	st, err := sqlite.Open(context.Background(), h.path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: cp.Checkpoint.ID, Action: store.ActionAbort, By: "U2", Via: "test"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := len(w.Actions())
	h.start(nil)
	end := h.waitFinished()
	if end.State != store.StateAborted {
		t.Fatalf("state %s", end.State)
	}
	for _, n := range []string{"app-2", "app-3"} {
		if s := w.NodeState(n); strings.HasPrefix(s, "running") {
			t.Errorf("%s after the abort: %s", n, s)
		}
	}
	for _, a := range w.Actions()[before:] {
		if strings.HasPrefix(a, "start ") || strings.HasPrefix(a, "set-env ") {
			t.Errorf("the resumed abort started something: %s", a)
		}
	}
	checkSafe(t, w)
}

// The option is off by default; the cluster's setting turns it on, a
// run's word turns it off again; the plan says which and why.
func TestStartDuringVerifyIsChosen(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:2.2.14", true, "app-1", "app-2", "app-3")
	for _, tc := range []struct {
		name    string
		cluster bool
		words   []string
		want    string
	}{
		{"default", false, []string{"upgrade", "2.2.15", "prod"}, "Start during verify: off (configured)"},
		{"configured", true, []string{"upgrade", "2.2.15", "prod"}, "Start during verify: on (configured)"},
		{"asked", false, []string{"upgrade", "2.2.15", "prod", "--start-during-verify"}, "Start during verify: on (asked for this run)"},
		{"refused", true, []string{"upgrade", "2.2.15", "prod", "--no-start-during-verify"}, "Start during verify: off (asked for this run)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, w, func(c *procedures.Cluster) { c.NodeEnv, c.StartDuringVerify = w, tc.cluster })
			req, err := procedures.ParseRequest(tc.words)
			if err != nil {
				t.Fatal(err)
			}
			req.Requester = "U1"
			plan, err := h.eng.Plan(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(plan, tc.want) {
				t.Errorf("plan lacks %q:\n%s", tc.want, plan)
			}
			early := strings.Contains(tc.want, ": on")
			if got := strings.Contains(plan, "the other nodes starting meanwhile"); got != early {
				t.Errorf("plan's verify step names the early start: %v, want %v:\n%s", got, early, plan)
			}
		})
	}
	if _, err := procedures.ParseRequest([]string{"upgrade", "2.2.15", "--start-during-verfy"}); err == nil {
		t.Error("a misspelt option was accepted")
	}
}

// A node that does not come up during the check is reported at the
// checkpoint; continue starts it again before traffic goes back.
func TestStartDuringVerifyFailureRetriedAtContinue(t *testing.T) {
	w, h := earlyCluster(t)
	w.Fail("healthy app-2", 1)
	h.startRun(earlyUpgrade())
	cp := h.waitCheckpoint("verify")
	if msg := h.waitEarlyEnd(); !strings.Contains(msg, "did not all start") || !strings.Contains(msg, "Continue starts them again") {
		t.Fatalf("checkpoint line: %q", msg)
	}
	if w.LB() != ports.LBMaintenance {
		t.Fatalf("traffic at the checkpoint: %s", w.LB())
	}
	h.decide(cp, store.ActionContinue, "U2")
	end := h.waitFinished()
	if end.State != store.StateSucceeded || w.LB() != ports.LBNormal {
		t.Fatalf("state %s, traffic %s: %s", end.State, w.LB(), end.Error)
	}
	if d := forwardDetail(end, "start-rest"); !strings.Contains(d, "the start during the check failed") {
		t.Errorf("start-rest detail: %q", d)
	}
	checkSafe(t, w)
}
