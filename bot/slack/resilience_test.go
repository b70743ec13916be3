package slack

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/store"
)

func (h *harness) waitState(id string, want store.RunState) store.Run {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := h.store.GetRun(context.Background(), id)
		if err == nil && r.State == want {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %s is %s, want %s", id, r.State, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) onlyRun() store.Run {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, _ := h.store.ListRuns(context.Background(), "", 0)
		if len(runs) == 1 {
			return runs[0]
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d runs, want 1", len(runs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Slack unreachable during a run: the run goes on, and the thread
// catches up once Slack is back; a 429 waits for Retry-After.
func TestSlackDownNeverStopsRun(t *testing.T) {
	h := newHarness(t, "http")
	var down atomic.Bool
	var limited atomic.Int32
	h.fs.mu.Lock()
	h.fs.fail = func(method string) (int, string) {
		if down.Load() && (method == "chat.postMessage" || method == "chat.update") {
			return 503, ""
		}
		if method == "chat.update" && limited.Add(-1) >= 0 {
			return 429, "1"
		}
		return 0, ""
	}
	h.fs.mu.Unlock()
	down.Store(true)

	h.command(uRequest, chProd, "upgrade 1.7.14")
	run := h.onlyRun()
	// The run reaches its checkpoint while Slack refuses every post.
	run = h.waitState(run.ID, store.StateWaiting)
	if n := len(h.fs.Calls("chat.postMessage", "chat.update")); n != 0 {
		t.Fatalf("%d successful posts while Slack was down", n)
	}
	down.Store(false)
	root := h.rootOf(chProd, "Upgrade of prod from 1.7.13 to 1.7.14")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	// Caught up: one root (the retries did not duplicate it), every step
	// done so far in the thread.
	roots := 0
	for _, c := range h.fs.Calls("chat.postMessage") {
		if c.ThreadTS() == "" {
			roots++
		}
	}
	if roots != 1 {
		t.Fatalf("%d root messages", roots)
	}
	for _, title := range []string{"Preflight", "Stop all app nodes", "Back up database and storage", "Start one node"} {
		h.reply(root.TS, "*"+title)
	}

	// Rate limited on the next edit: the edit waits Retry-After (1 s).
	limited.Store(1)
	h.click(uApprover, chProd, cp.TS, "nocobot.cp.continue", run.ID+"|"+run.Checkpoint.ID)
	_, edit := h.reply(root.TS, "chose *Continue*")
	var limitedAt time.Time
	for _, c := range h.fs.Calls("chat.update (failed)") {
		limitedAt = c.At
		break
	}
	if limitedAt.IsZero() {
		t.Fatal("no edit was rate limited")
	}
	if gap := edit.At.Sub(limitedAt); gap < 900*time.Millisecond {
		t.Fatalf("retried %s after a 429 with Retry-After: 1", gap)
	}
	h.reply(root.TS, "Outcome: *succeeded*")
}

// A failed step offers Retry and Abort; a retry goes on; a cancel
// aborts, closes the open question and broadcasts the summary.
func TestFailedStepAndCancel(t *testing.T) {
	h := newHarness(t, "http")
	h.world.Fail("pull", 1)
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	_, failed := h.reply(root.TS, "— failed after")
	if !strings.Contains(failed.Text(), "injected failure") {
		t.Fatalf("failed step: %q", failed.Text())
	}
	q, _ := h.reply(root.TS, "A step failed: what now?")
	run := h.onlyRun()
	v := run.ID + "|" + run.Checkpoint.ID
	if got, want := q.Buttons(), []string{"nocobot.cp.retry=" + v, "nocobot.cp.abort=" + v}; !slices.Equal(got, want) {
		t.Fatalf("buttons %v, want %v", got, want)
	}
	// The requester may retry their own run (four-eyes is about approving).
	h.click(uRequest, chProd, q.TS, "nocobot.cp.retry", v)
	h.reply(root.TS, "<@"+uRequest+"> chose *Retry*")
	cp, _ := h.reply(root.TS, "Verify checkpoint")

	h.command(uStranger, chProd, "cancel "+run.ID)
	h.fs.ephemeralTo(uStranger, "not allowed to cancel")
	h.command(uRequest, chProd, "cancel "+run.ID)
	h.fs.ephemeralTo(uRequest, "Abort requested for run "+run.ID)
	summary, _ := h.reply(root.TS, "Outcome: *aborted*")
	if summary.Form.Get("reply_broadcast") != "true" {
		t.Fatal("summary not broadcast")
	}
	h.waitRunGone(run.ID)
	last := latestOf(h.fs.Calls(), cp.TS)
	if len(last.Buttons()) != 0 || !strings.Contains(last.Text(), "Closed: the run aborted") && !strings.Contains(last.Text(), "chose *Abort*") {
		t.Fatalf("the open checkpoint still offers buttons after the abort: %s", dumpCalls([]apiCall{last}))
	}
}

// After a restart the bot edits the thread it started, never a second one.
func TestRestartEditsThread(t *testing.T) {
	h := newHarness(t, "http")
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	run := h.onlyRun()
	run = h.waitState(run.ID, store.StateWaiting)

	h.stopFront()
	// Decided while the bot is away; the run stops short of its end.
	hold := h.world.BlockOn("start app-2")
	if _, err := h.eng.Decide(context.Background(), store.Decision{RunID: run.ID, Checkpoint: run.Checkpoint.ID, Action: store.ActionContinue, By: uApprover, Via: "slack"}); err != nil {
		t.Fatal(err)
	}
	<-hold.Reached
	before := len(h.fs.Calls())
	h.startFront()
	// The new front shows the decision on the old checkpoint message.
	_, edit := h.reply(root.TS, "<@"+uApprover+"> chose *Continue*")
	if edit.Method != "chat.update" || edit.TS != cp.TS {
		t.Fatalf("decision not shown in place: %s", dumpCalls([]apiCall{edit}))
	}
	hold.Release()
	h.reply(root.TS, "Outcome: *succeeded*")
	for _, c := range h.fs.Calls()[before:] {
		if c.Method == "chat.postMessage" && c.ThreadTS() == "" {
			t.Fatalf("a second root after the restart: %s", dumpCalls([]apiCall{c}))
		}
		if c.Method == "chat.postMessage" && strings.Contains(c.Text(), "Preflight") {
			t.Fatalf("a step posted again after the restart: %s", dumpCalls([]apiCall{c}))
		}
	}
	h.fs.waitFor("root brought up to date", func(cs []apiCall) bool {
		return strings.Contains(latestOf(cs, root.TS).Text(), "Succeeded")
	})
}

// A run started in Slack and answered at a terminal: the one dispatcher
// records the terminal's decision in the audit log, and the thread shows
// who decided by name (a terminal user is no Slack mention).
func TestTerminalDecisionShowsInThread(t *testing.T) {
	h := newHarness(t, "http", func(s *setup) {
		s.cfg.Access.Decide.Users = append(s.cfg.Access.Decide.Users, "terminal:alice")
	})
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	run := h.waitState(h.onlyRun().ID, store.StateWaiting)

	// The harness's dispatcher does not trust the terminal: bob is in no
	// access list, alice is.
	bob := bot.Caller{User: "terminal:bob", Via: bot.ViaTerminal, Prefix: "nocobot"}
	r := h.front.disp.Decide(context.Background(), bob, bot.Answer{RunID: run.ID, Action: store.ActionContinue, Said: "nocobot decide " + run.ID + " continue"})
	if r.Outcome.Kind != bot.Refused || !strings.Contains(r.Plain(), "not allowed to decide checkpoints on prod") {
		t.Fatalf("untrusted terminal decision: %+v", r)
	}
	op := bot.Caller{User: "terminal:alice", Via: bot.ViaTerminal, Prefix: "nocobot"}
	r = h.front.disp.Decide(context.Background(), op, bot.Answer{RunID: run.ID, Action: store.ActionContinue, Said: "nocobot decide " + run.ID + " continue"})
	if r.Outcome.String() != "ok: continue" {
		t.Fatalf("terminal decision: %+v", r)
	}
	_, shown := h.reply(root.TS, "terminal:alice chose *Continue*")
	if shown.TS != cp.TS {
		t.Fatalf("the decision is not shown on the checkpoint message: %s", dumpCalls([]apiCall{shown}))
	}
	h.reply(root.TS, "Outcome: *succeeded*")
	var got []string
	for _, e := range h.audit() {
		if e.Via == "terminal" {
			got = append(got, e.Action+" → "+e.Outcome+" ["+e.RunID+"]")
		}
	}
	want := []string{
		"nocobot decide " + run.ID + " continue → refused: Sorry, you are not allowed to decide checkpoints on prod. [" + run.ID + "]",
		"nocobot decide " + run.ID + " continue → ok: continue [" + run.ID + "]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("terminal audit entries:\n%q\nwant\n%q", got, want)
	}
}
