package procedures_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// maintain keeps serving users on one node: its roll-back question says
// when the backup was taken and that later writes are lost, and the
// rollback timeout policy never restores over live writes.
func TestMaintainRollbackNeverLosesWritesUnasked(t *testing.T) {
	h := newHarness(t, cluster3())
	h.policy = procedures.TimeoutRollback
	h.restart(nil)
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "enable", Arg: "map"}}})
	cp := h.waitCheckpoint("verify")
	q := cp.Checkpoint.Question
	if !strings.Contains(q, "Rolling back restores backup b1, taken at 20") || !strings.Contains(q, "UTC: every write made since then is lost") {
		t.Fatalf("verify question %q", q)
	}
	waitTimer(t, h.clock)
	h.clock.Advance(time.Hour)
	ev := h.waitFor("reminder", func(ev events.Event) bool { return ev.Kind == events.Reminder })
	if ev.Run.State != store.StateWaiting {
		t.Fatalf("after the deadline: %s", ev.Run.State)
	}
	ds, _ := h.store.Decisions(context.Background(), cp.ID)
	if len(ds) != 0 {
		t.Fatalf("the timeout decided %+v", ds)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "restore") {
			t.Fatalf("restored over live writes: %q", h.world.Actions())
		}
	}
}

// maintain restore refuses a backup of a newer NocoBase than the nodes
// run: NocoBase has no downgrade.
func TestMaintainRestoreRefusesNewerBackup(t *testing.T) {
	h := newHarness(t, cluster3())
	h.world.AddBackup("prod-new", "1.7.14")
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "restore", Arg: "prod-new"}}})
	cp := h.waitCheckpoint("failure")
	if q := cp.Checkpoint.Question; !strings.Contains(q, "prod-new holds NocoBase 1.7.14, newer than the 1.7.13 the nodes run") {
		t.Fatalf("question %q", q)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "stop") || strings.HasPrefix(a, "restore") {
			t.Fatalf("acted on a refused restore: %q", h.world.Actions())
		}
	}
}
