package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// traffic on|off is a word of the command language: access-checked,
// refused while a run holds the cluster (naming it, audited with its
// id), and switched and read back once the run has ended.
func TestTrafficByHand(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if r := f.disp.Command(ctx, slackUser(uStranger), "traffic off"); r.Outcome.Kind != bot.Refused || !strings.Contains(r.Plain(), "You are not allowed to switch traffic on prod.") {
		t.Fatalf("stranger: %+v", r)
	}
	started := f.disp.Command(ctx, slackUser(uRequest), "upgrade 1.7.14")
	if !started.Started {
		t.Fatalf("start: %s", started.Plain())
	}
	f.waitCheckpoint(started.RunID)
	r := f.disp.Command(ctx, slackUser(uRequest), "traffic on")
	if r.Outcome.Kind != bot.Refused || r.RunID != started.RunID || !strings.Contains(r.Plain(), "is held by run "+started.RunID) ||
		!strings.Contains(r.Plain(), "/nocobase cancel "+started.RunID) {
		t.Fatalf("traffic while a run waits: %+v", r)
	}
	if a := f.lastAudit(); a.Action != "/nocobase traffic on" || a.RunID != started.RunID || !strings.HasPrefix(a.Outcome, "refused: prod is held by run") {
		t.Fatalf("audit: %+v", a)
	}
	if f.world.LB() != ports.LBMaintenance {
		t.Fatalf("the refused switch changed the balancer: %s", f.world.LB())
	}
	if r := f.disp.Command(ctx, slackUser(uRequest), "cancel "+started.RunID); r.Outcome.Kind != bot.OK {
		t.Fatalf("cancel: %s", r.Plain())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		run, err := f.store.GetRun(ctx, started.RunID)
		if err == nil && run.State == store.StateAborted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never aborted: %s", run.State)
		}
	}
	r = f.disp.Command(ctx, slackUser(uRequest), "traffic on prod")
	if r.Outcome.String() != "ok: on; load balancer reports: to the app nodes" || !strings.Contains(r.Plain(), "Traffic on prod: to the app nodes (checked after the switch).") || r.Announce.Empty() {
		t.Fatalf("traffic on: %+v", r)
	}
	if f.world.LB() != ports.LBNormal {
		t.Fatalf("balancer: %s", f.world.LB())
	}
	// Audited with what the balancer reports, and the switch's own record.
	if a := f.lastAudit(); a.Outcome != "ok: on; load balancer reports: to the app nodes" || a.RunID == "" || a.RunID == started.RunID {
		t.Fatalf("audit of the switch: %+v", a)
	}
	f.world.Fail("lb maintenance", 1)
	r = f.disp.Command(ctx, slackUser(uRequest), "traffic off")
	if a := f.lastAudit(); r.Outcome.Kind != bot.Failed || !strings.HasPrefix(a.Outcome, "failed: injected failure") || a.RunID == "" {
		t.Fatalf("a failed switch: %+v, audit %+v", r, a)
	}
	if r := f.disp.Command(ctx, slackUser(uRequest), "traffic sideways"); r.Outcome.Kind != bot.Refused || !strings.Contains(r.Plain(), "expected on") {
		t.Fatalf("bad word: %+v", r)
	}
}

// A terminal that no rule names is refused with the settings to change.
func TestTerminalRefusalNamesTheSettings(t *testing.T) {
	f := newFixture(t)
	who := bot.Caller{User: "terminal:mallory", Via: bot.ViaTerminal, Prefix: "nocobot"}
	r := f.disp.Command(context.Background(), who, "traffic off")
	if r.Outcome.Kind != bot.Refused || !strings.Contains(r.Plain(), "access.terminal_users") || !strings.Contains(r.Plain(), "access.trust_terminal: true") {
		t.Fatalf("%+v", r)
	}
}
