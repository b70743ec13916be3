package slack

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

// event posts an Events API callback, signed, as Slack sends it.
func (h *harness) event(inner map[string]any) {
	h.t.Helper()
	b, _ := json.Marshal(map[string]any{
		"token": "unused", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
		"event_id": fmt.Sprintf("Ev%d", time.Now().UnixNano()), "event_time": time.Now().Unix(), "event": inner,
	})
	if code, body := h.post(PathEvents, string(b), testSecret, time.Now()); code != 200 {
		h.t.Fatalf("event %v: %d %q", inner["type"], code, body)
	}
}

// The bot is not in the channel: the person who typed the command is
// answered through response_url (with the run id and how to invite the
// bot), the run goes on, and once the bot is invited the whole thread
// appears, its checkpoint with buttons.
func TestNotInChannelThenInvited(t *testing.T) {
	h := newHarness(t, "http", withOptions(func(o *Options) { o.ParkRetry = time.Hour }))
	var invited atomic.Bool
	h.fs.mu.Lock()
	h.fs.refuse = func(method string, f url.Values) string {
		if !invited.Load() && f.Get("channel") == chProd && strings.HasPrefix(method, "chat.") && method != "chat.getPermalink" {
			return "not_in_channel"
		}
		return ""
	}
	h.fs.mu.Unlock()

	h.command(uRequest, chProd, "upgrade 1.7.14")
	var answer apiCall
	h.fs.waitFor("an answer through response_url", func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "response_url" && strings.Contains(c.Text(), "Started run r") {
				answer = c
				return true
			}
		}
		return false
	})
	run := h.onlyRun()
	for _, want := range []string{"Started run " + run.ID, "invite me with `/invite @nocobot`", "not_in_channel"} {
		if !strings.Contains(answer.Text(), want) {
			t.Fatalf("the answer lacks %q: %q", want, answer.Text())
		}
	}
	if answer.Form.Get("response_type") != "ephemeral" {
		t.Fatalf("the answer is not ephemeral: %v", answer.Form)
	}
	// The run does not wait for Slack.
	run = h.waitState(run.ID, store.StateWaiting)
	for _, c := range h.fs.Calls("chat.postMessage") {
		if c.Channel() == chProd {
			t.Fatalf("a post although the channel refuses the bot: %s", dumpCalls([]apiCall{c}))
		}
	}

	// Its checkpoint is not left without buttons: it is shown, with them,
	// in a channel the bot may post in, and decided from there.
	var away apiCall
	h.fs.waitFor("the checkpoint in another channel", func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.Channel() == chOps && strings.Contains(c.Text(), "cannot post its thread in <#"+chProd+"> (not_in_channel)") && len(c.Buttons()) == 3 {
				away = c
				return true
			}
		}
		return false
	})
	if !strings.Contains(away.Text(), "Who decides: <@"+uRequest+">, <!subteam^"+gApprover+">") {
		t.Fatalf("the checkpoint shown elsewhere does not say who decides: %q", away.Text())
	}
	h.click(uApprover, chOps, away.TS, "nocobot.cp.continue", run.ID+"|"+run.Checkpoint.ID)
	h.fs.waitFor("the decision shown where it was taken", func(cs []apiCall) bool {
		last := latestOf(cs, away.TS)
		return last.Method == "chat.update" && strings.Contains(last.Text(), "<@"+uApprover+"> chose *Continue*") && len(last.Buttons()) == 0
	})
	h.waitState(run.ID, store.StateSucceeded)

	// Invited: the whole thread appears.
	invited.Store(true)
	h.event(map[string]any{"type": "member_joined_channel", "user": botUser, "channel": chProd, "channel_type": "C", "team": "T1", "inviter": uRequest})
	root := h.rootOf(chProd, "Upgrade of prod")
	for _, title := range []string{"Preflight", "Stop all app nodes", "Back up database and storage", "Start one node", "Verify checkpoint", "<@" + uApprover + "> chose *Continue*", "Outcome: *succeeded*"} {
		h.reply(root.TS, title)
	}
	// The person is told the thread is up, with its link.
	h.fs.waitFor("a follow-up with the thread's link", func(cs []apiCall) bool {
		for _, c := range cs {
			if (c.Method == "response_url" || c.Method == "chat.postEphemeral" && c.Form.Get("user") == uRequest) && strings.Contains(c.Text(), "thread is up") && strings.Contains(c.Text(), "https://nocobot-test.slack.com/archives/"+chProd+"/p") {
				return true
			}
		}
		return false
	})
	h.waitRunGone(run.ID)
}

// Without an invitation event (HTTP mode without event subscriptions),
// a parked thread is tried again periodically.
func TestParkedThreadRetried(t *testing.T) {
	h := newHarness(t, "http", withOptions(func(o *Options) { o.ParkRetry = 300 * time.Millisecond }))
	var invited atomic.Bool
	h.fs.mu.Lock()
	h.fs.refuse = func(method string, f url.Values) string {
		if !invited.Load() && method == "chat.postMessage" {
			return "not_in_channel"
		}
		return ""
	}
	h.fs.mu.Unlock()
	h.command(uRequest, chProd, "upgrade 1.7.14")
	h.waitState(h.onlyRun().ID, store.StateWaiting)
	invited.Store(true)
	root := h.rootOf(chProd, "Upgrade of prod")
	h.reply(root.TS, "Verify checkpoint")
}

// A thread whose root was deleted is posted again under a new root that
// says why; the checkpoint's buttons are in the new thread.
func TestThreadRebuiltWhenRootIsGone(t *testing.T) {
	h := newHarness(t, "http")
	hold := h.world.BlockOn("healthy app-1")
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	<-hold.Reached
	h.reply(root.TS, "Start one node")
	var mu sync.Mutex
	deleted := map[string]bool{root.TS: true}
	h.fs.mu.Lock()
	h.fs.refuse = func(method string, f url.Values) string {
		mu.Lock()
		defer mu.Unlock()
		if method == "chat.update" && deleted[f.Get("ts")] || method == "chat.postMessage" && deleted[f.Get("thread_ts")] {
			return "message_not_found"
		}
		return ""
	}
	h.fs.mu.Unlock()
	hold.Release()
	var newRoot apiCall
	h.fs.waitFor("a new root", func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.ThreadTS() == "" && c.TS != root.TS && strings.Contains(c.Text(), "Upgrade of prod") {
				newRoot = c
				return true
			}
		}
		return false
	})
	if !strings.Contains(newRoot.Text(), "This thread replaces an earlier one: Slack refused a message of the old one (message_not_found).") {
		t.Fatalf("the new root does not say why: %q", newRoot.Text())
	}
	cp, _ := h.reply(newRoot.TS, "Verify checkpoint")
	if len(cp.Buttons()) != 3 {
		t.Fatalf("buttons: %v", cp.Buttons())
	}
	h.reply(newRoot.TS, "*Preflight")
	run := h.waitState(h.onlyRun().ID, store.StateWaiting)
	h.click(uApprover, chProd, cp.TS, "nocobot.cp.continue", run.ID+"|"+run.Checkpoint.ID)
	h.reply(newRoot.TS, "Outcome: *succeeded*")
}

// A message Slack refuses as it is (invalid_blocks) is sent again in its
// plainest form: the checkpoint keeps its buttons.
func TestRefusedMessageSentPlain(t *testing.T) {
	h := newHarness(t, "http")
	var refused atomic.Int32
	h.fs.mu.Lock()
	h.fs.refuse = func(method string, f url.Values) string {
		if method == "chat.postMessage" && strings.Contains(f.Get("text"), "Verify checkpoint") && strings.Contains(f.Get("blocks"), `"confirm"`) {
			refused.Add(1)
			return "invalid_blocks"
		}
		return ""
	}
	h.fs.mu.Unlock()
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	if refused.Load() == 0 {
		t.Fatal("the checkpoint was never refused")
	}
	if len(cp.Buttons()) != 3 {
		t.Fatalf("the plain checkpoint lost its buttons: %v", cp.Buttons())
	}
}
