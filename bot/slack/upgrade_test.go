package slack

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

// rootOf waits for the root message of a run in channel and returns it.
func (h *harness) rootOf(channel, contains string) apiCall {
	h.t.Helper()
	var root apiCall
	h.fs.waitFor("root message "+contains, func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.ThreadTS() == "" && c.Channel() == channel && strings.Contains(c.Text(), contains) {
				root = c
				return true
			}
		}
		return false
	})
	return root
}

// reply waits for a reply in the thread whose text contains substr, and
// returns the post that created that message (found by its ts, so an
// edit that added substr counts).
func (h *harness) reply(rootTS, substr string) (post apiCall, latest apiCall) {
	h.t.Helper()
	h.fs.waitFor("reply containing "+substr, func(cs []apiCall) bool {
		posts := map[string]apiCall{}
		for _, c := range cs {
			switch c.Method {
			case "chat.postMessage":
				if c.ThreadTS() == rootTS {
					posts[c.TS] = c
					if strings.Contains(c.Text(), substr) {
						post, latest = c, c
						return true
					}
				}
			case "chat.update":
				if p, ok := posts[c.TS]; ok && strings.Contains(c.Text(), substr) {
					post, latest = p, c
					return true
				}
			}
		}
		return false
	})
	return post, latest
}

// latestOf is the latest content of the message ts (post or edit).
func latestOf(cs []apiCall, ts string) apiCall {
	var last apiCall
	for _, c := range cs {
		if (c.Method == "chat.postMessage" || c.Method == "chat.update") && c.TS == ts {
			last = c
		}
	}
	return last
}

func TestWholeUpgradeThroughSlack(t *testing.T) {
	h := newHarness(t, "http")
	// Hold the first node's health wait so the live progress shows.
	healthy := h.world.BlockOn("healthy app-1")

	h.command(uRequest, chProd, "upgrade 1.7.14")
	started := h.fs.ephemeralTo(uRequest, "Started run r")
	root := h.rootOf(chProd, "Upgrade of prod")
	// The answer gives the run id and a link to its thread.
	if link := "Its thread: <https://nocobot-test.slack.com/archives/" + chProd + "/p" + strings.ReplaceAll(root.TS, ".", "") + "|"; !strings.Contains(started.Text(), link) {
		t.Fatalf("the answer does not link the thread: %q", started.Text())
	}
	if !strings.Contains(root.Text(), "<@"+uRequest+">") {
		t.Fatalf("root does not name the requester: %q", root.Text())
	}
	runs, _ := h.store.ListRuns(context.Background(), "prod", 1)
	run := runs[0]

	// A running step shows its live progress, edited in place.
	<-healthy.Reached
	progress, _ := h.reply(root.TS, "app-1: APP_COMMANDING start")
	if !strings.Contains(latestOf(h.fs.Calls(), progress.TS).Text(), "— running: app-1: APP_COMMANDING start — load plugin [ai], 50/77 (") {
		t.Fatalf("progress line: %q", latestOf(h.fs.Calls(), progress.TS).Text())
	}
	healthy.Release()

	// The checkpoint: a reply with the node's URL and three buttons that
	// carry the run and checkpoint ids.
	cpPost, _ := h.reply(root.TS, "Verify checkpoint")
	run, _ = h.store.GetRun(context.Background(), run.ID)
	if run.Checkpoint == nil {
		t.Fatal("run has no open checkpoint")
	}
	value := run.ID + "|" + run.Checkpoint.ID
	wantButtons := []string{"nocobot.cp.continue=" + value, "nocobot.cp.rollback=" + value, "nocobot.cp.abort=" + value}
	if got := cpPost.Buttons(); !slices.Equal(got, wantButtons) {
		t.Fatalf("checkpoint buttons %v, want %v", got, wantButtons)
	}
	if !strings.Contains(cpPost.Text(), "http://app-1:13000") {
		t.Fatalf("checkpoint does not give the node to check: %q", cpPost.Text())
	}

	// A stranger's click is refused and changes nothing.
	h.click(uStranger, chProd, cpPost.TS, "nocobot.cp.continue", value)
	h.fs.ephemeralTo(uStranger, "not allowed to decide checkpoints on prod")
	// The requester may not approve their own run (four-eyes).
	h.click(uRequest, chProd, cpPost.TS, "nocobot.cp.continue", value)
	h.fs.ephemeralTo(uRequest, "Four-eyes rule")
	time.Sleep(150 * time.Millisecond)
	if r, _ := h.store.GetRun(context.Background(), run.ID); r.State != store.StateWaiting {
		t.Fatalf("after refused clicks the run is %s, want waiting", r.State)
	}
	if ds, _ := h.store.Decisions(context.Background(), run.ID); len(ds) != 0 {
		t.Fatalf("refused clicks recorded decisions: %+v", ds)
	}

	// An approver (member of the approvers' user group) continues; two
	// quick clicks decide once.
	h.click(uApprover, chProd, cpPost.TS, "nocobot.cp.continue", value)
	h.click(uApprover, chProd, cpPost.TS, "nocobot.cp.continue", value)
	h.fs.ephemeralTo(uApprover, "already")
	_, decided := h.reply(root.TS, "<@"+uApprover+"> chose *Continue*")
	if decided.Method != "chat.update" || decided.TS != cpPost.TS || len(decided.Buttons()) != 0 {
		t.Fatalf("the decision must replace the buttons in place: %s", dumpCalls([]apiCall{decided}))
	}

	// The summary, in the thread and broadcast to the channel.
	summary, _ := h.reply(root.TS, "Outcome: *succeeded*")
	if summary.Form.Get("reply_broadcast") != "true" {
		t.Fatalf("summary not broadcast: %v", summary.Form)
	}
	for _, want := range []string{"Total: ", "Downtime: ", "Backup: `"} {
		if !strings.Contains(summary.Text(), want) {
			t.Fatalf("summary lacks %q: %q", want, summary.Text())
		}
	}
	// After a click on a finished run: refused politely.
	h.waitRunGone(run.ID)
	h.click(uApprover, chProd, cpPost.TS, "nocobot.cp.continue", value)
	h.fs.ephemeralTo(uApprover, "has already finished (succeeded)")

	calls := h.fs.Calls()
	// Every message is in the cluster's channel; every reply is in the
	// run's thread; every edit edits a message of the thread.
	posted := map[string]bool{root.TS: true}
	for _, c := range calls {
		if c.Method == "chat.postMessage" && c.TS != root.TS {
			if c.Channel() != chProd || c.ThreadTS() != root.TS {
				t.Fatalf("reply outside the thread: %s", dumpCalls([]apiCall{c}))
			}
			posted[c.TS] = true
		}
	}
	var edits, posts int
	lastEdit := map[string]time.Time{}
	for _, c := range calls {
		switch c.Method {
		case "chat.postMessage":
			posts++
		case "chat.update":
			edits++
			if c.Channel() != chProd || !posted[c.TS] {
				t.Fatalf("edit of a message not in the thread: %s", dumpCalls([]apiCall{c}))
			}
			// Coalescing: no message edited twice within EditEvery (200 ms
			// here), with some slack for the recording.
			if prev, ok := lastEdit[c.TS]; ok && c.At.Sub(prev) < 150*time.Millisecond {
				t.Fatalf("message %s edited twice within %s", c.TS, c.At.Sub(prev))
			}
			lastEdit[c.TS] = c.At
		}
	}
	final := latestOf(calls, root.TS)
	if !strings.Contains(final.Text(), "Succeeded in") || !strings.Contains(final.Text(), "1.7.13 → 1.7.14") {
		t.Fatalf("root at the end: %q", final.Text())
	}
	// Every step of the run shows done with its time.
	r, _ := h.store.GetRun(context.Background(), run.ID)
	for _, st := range r.Steps {
		if st.Name == "verify" {
			continue
		}
		found := false
		for ts := range posted {
			if strings.Contains(latestOf(calls, ts).Text(), "*"+st.Title+"* — done in ") {
				found = true
			}
		}
		if !found {
			t.Fatalf("no reply shows %q done:\n%s", st.Title, dumpCalls(calls))
		}
	}
	t.Logf("Slack API calls for one upgrade run: %d posts + %d edits = %d (thread of %d messages, %d steps)", posts, edits, posts+edits, len(posted), len(r.Steps))

	// The audit log has the command, the refusals and the decision.
	es := h.waitAudit(6)
	var lines []string
	for _, e := range es {
		lines = append(lines, e.User+" "+e.Action+" → "+e.Outcome)
	}
	want := []string{
		uRequest + " /nocobase upgrade 1.7.14 → ok",
		uStranger + " button continue run " + run.ID + " checkpoint " + run.Checkpoint.ID + " → refused: Sorry, you are not allowed to decide checkpoints on prod.",
		uRequest + " button continue run " + run.ID + " checkpoint " + run.Checkpoint.ID + " → refused: Four-eyes rule",
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Fatalf("audit[%d] = %q, want prefix %q\nall: %q", i, lines[i], w, lines)
		}
	}
	okDecisions := 0
	for _, l := range lines[3:] {
		if strings.HasSuffix(l, "→ ok: continue") {
			okDecisions++
		}
	}
	if okDecisions != 1 {
		t.Fatalf("want exactly one decision recorded: %q", lines)
	}
}

// waitRunGone waits until the run is finished and its thread is done.
func (h *harness) waitRunGone(id string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		h.front.mu.Lock()
		_, rendering := h.front.threads[id]
		h.front.mu.Unlock()
		r, err := h.store.GetRun(context.Background(), id)
		if err == nil && r.State.Finished() && !rendering {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("run %s did not finish", id)
}

// TestAPICallsPerRun counts the Slack API calls of one upgrade run with
// the production coalescing settings and without coalescing (figures for
// the closing note).
func TestAPICallsPerRun(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	for _, tc := range []struct {
		name        string
		edit, flush time.Duration
	}{
		{"coalesced (1 s per message, 250 ms gather)", time.Second, 250 * time.Millisecond},
		{"not coalesced", time.Nanosecond, time.Nanosecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "http", withOptions(func(o *Options) { o.EditEvery, o.FlushDelay = tc.edit, tc.flush }))
			h.command(uRequest, chProd, "upgrade 1.7.14")
			root := h.rootOf(chProd, "Upgrade of prod")
			cp, _ := h.reply(root.TS, "Verify checkpoint")
			run := h.onlyRun()
			h.click(uApprover, chProd, cp.TS, "nocobot.cp.continue", run.ID+"|"+run.Checkpoint.ID)
			h.reply(root.TS, "Outcome: *succeeded*")
			h.waitRunGone(run.ID)
			posts, edits := len(h.fs.Calls("chat.postMessage")), len(h.fs.Calls("chat.update"))
			t.Logf("%s: %d posts + %d edits = %d thread calls (+%d ephemeral, %d usergroups) for one upgrade run",
				tc.name, posts, edits, posts+edits, len(h.fs.Calls("chat.postEphemeral")), len(h.fs.Calls("usergroups.users.list")))
		})
	}
}
