package slack

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/store"
)

// rawID finds a user or group id that is not inside a mention.
var rawID = regexp.MustCompile(`(^|[^@^A-Z0-9])(UREQUEST|UAPPROVE|SAPPROVE)`)

// A checkpoint mentions who may decide it (users and groups, so they are
// notified), says under four-eyes that the requester may not continue,
// asks to confirm Roll back and Abort, and shows times in each reader's
// own time zone; reminders ping the deciders without repeating the
// question; a refused click is answered in the thread it came from.
func TestCheckpointSaysWhoMustAct(t *testing.T) {
	h := newHarness(t, "http", func(s *setup) { s.prod.CheckpointTimeout = 700 * time.Millisecond })
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	run := h.waitState(h.onlyRun().ID, store.StateWaiting)

	who := "Who decides: <@" + uRequest + ">, <!subteam^" + gApprover + "> — anyone but <@" + uRequest + "> may continue (four-eyes rule)"
	if !strings.Contains(cp.Text(), who) {
		t.Fatalf("the checkpoint does not say who decides:\n%s\nwant %q", cp.Text(), who)
	}
	if m := rawID.FindString(cp.Text()); m != "" {
		t.Fatalf("a raw id %q in the checkpoint: %q", m, cp.Text())
	}
	want := fmt.Sprintf("Waiting until <!date^%d^{date_short_pretty} {time}|", run.Checkpoint.Deadline.Unix())
	if !strings.Contains(blockTexts(cp), want) {
		t.Fatalf("the deadline is not a Slack date: %s", blockTexts(cp))
	}
	var blocks slack.Blocks
	if err := json.Unmarshal([]byte(cp.Form.Get("blocks")), &blocks); err != nil {
		t.Fatal(err)
	}
	confirms := map[string]bool{}
	for _, b := range blocks.BlockSet {
		if ab, ok := b.(*slack.ActionBlock); ok {
			for _, e := range ab.Elements.ElementSet {
				if btn, ok := e.(*slack.ButtonBlockElement); ok {
					confirms[btn.ActionID] = btn.Confirm != nil && btn.Confirm.Confirm != nil && btn.Confirm.Deny != nil
				}
			}
		}
	}
	if !confirms["nocobot.cp.rollback"] || !confirms["nocobot.cp.abort"] || confirms["nocobot.cp.continue"] {
		t.Fatalf("confirmations (want on Roll back and Abort only): %v", confirms)
	}

	// A reminder pings the deciders; it does not repeat the question.
	_, reminder := h.reply(root.TS, ":bell: Still waiting for a decision")
	if !strings.Contains(reminder.Text(), "<!subteam^"+gApprover+">") || strings.Contains(reminder.Text(), "http://app-1:13000") {
		t.Fatalf("reminder: %q", reminder.Text())
	}

	// Refusals after a click land in the thread.
	h.click2(uStranger, root.TS, cp.TS, "nocobot.cp.continue", run.ID+"|"+run.Checkpoint.ID)
	refusal := h.fs.ephemeralTo(uStranger, "not allowed to decide")
	if refusal.ThreadTS() != root.TS {
		t.Fatalf("the refusal is not in the thread: %v", refusal.Form)
	}

	// Busy, said in English.
	h.command(uRequest, chProd, "upgrade 1.7.15")
	h.fs.ephemeralTo(uRequest, "prod is busy: run "+run.ID+" (upgrade of prod from 1.7.13 to 1.7.14, requested by <@"+uRequest+">) is waiting for a decision.")

	h.click2(uApprover, root.TS, cp.TS, "nocobot.cp.continue", run.ID+"|"+run.Checkpoint.ID)
	_, decided := h.reply(root.TS, "<@"+uApprover+"> chose *Continue* at <!date^")
	if len(decided.Buttons()) != 0 {
		t.Fatalf("buttons after the decision: %v", decided.Buttons())
	}
	h.reply(root.TS, "Outcome: *succeeded*")
	h.waitRunGone(run.ID)
	h.command(uRequest, chProd, "cancel "+run.ID)
	h.fs.ephemeralTo(uRequest, "Run "+run.ID+" has already finished (succeeded).")
}

// blockTexts is every text of a call's blocks, one a line.
func blockTexts(c apiCall) string {
	var v any
	_ = json.Unmarshal([]byte(c.Form.Get("blocks")), &v)
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch y := x.(type) {
		case []any:
			for _, e := range y {
				walk(e)
			}
		case map[string]any:
			if s, ok := y["text"].(string); ok {
				out = append(out, s)
			}
			for k, e := range y {
				if k != "text" || !isString(e) {
					walk(e)
				}
			}
		}
	}
	walk(v)
	return strings.Join(out, "\n")
}

func isString(x any) bool { _, ok := x.(string); return ok }

// click2 clicks a button of a message in the thread rootTS in chProd.
func (h *harness) click2(user, rootTS, messageTS, actionID, value string) {
	h.t.Helper()
	if code, body := h.post(PathInteractivity, clickBodyIn(user, chProd, rootTS, messageTS, actionID, value), testSecret, time.Now()); code != 200 {
		h.t.Fatalf("click: %d %q", code, body)
	}
}

// A failed run: the root names only the options offered, and a busy
// cluster says where the run stands in English.
func TestFailedRunInWords(t *testing.T) {
	h := newHarness(t, "http")
	h.world.Fail("pull", 1)
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	run := h.waitState(h.onlyRun().ID, store.StateFailed)
	want := "Waiting for a decision: " + run.Steps[run.Current].Title + " failed (" + choicesOf(run.Checkpoint.Options) + ")"
	h.fs.waitFor("the root names the options offered", func(cs []apiCall) bool {
		return strings.Contains(latestOf(cs, root.TS).Text(), want)
	})
	if strings.Contains(latestOf(h.fs.Calls(), root.TS).Text(), "Roll back") != contains(actionsOf(run.Checkpoint.Options), "rollback") {
		t.Fatalf("the root offers what the checkpoint does not: %q", latestOf(h.fs.Calls(), root.TS).Text())
	}
	h.command(uRequest, chProd, "upgrade 1.7.15")
	h.fs.ephemeralTo(uRequest, "is waiting for a decision after a failed step.")
}

func actionsOf(as []store.Action) []string {
	var out []string
	for _, a := range as {
		out = append(out, string(a))
	}
	return out
}
