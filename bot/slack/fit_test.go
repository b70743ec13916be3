package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// brokenNodes fails the first Stop with a Docker error, and lists
// nothing but that error until the next Stop: the way a daemon in
// trouble answers every call the same.
type brokenNodes struct {
	ports.Nodes
	err    error
	broken atomic.Bool
	stops  atomic.Int32
}

func (b *brokenNodes) Stop(ctx context.Context, name string) error {
	if b.stops.Add(1) == 1 {
		b.broken.Store(true)
		return b.err
	}
	return b.Nodes.Stop(ctx, name)
}

func (b *brokenNodes) List(ctx context.Context) ([]ports.Node, error) {
	if b.broken.Load() {
		return nil, b.err
	}
	return b.Nodes.List(ctx)
}

// dockerError is a 4,000-character error as the Docker daemon writes them.
func dockerError() error {
	var b strings.Builder
	b.WriteString("Error response from daemon: cannot stop container app-1: ")
	for i := 0; b.Len() < 3960; i++ {
		fmt.Fprintf(&b, "layer sha256:%064x in use by task %d; ", i, i)
	}
	b.WriteString("tried 4 times")
	return errors.New(b.String())
}

// uploadIn waits for the full text of a cut message uploaded in a thread.
func (h *harness) uploadIn(rootTS, contains string) apiCall {
	h.t.Helper()
	var got apiCall
	h.fs.waitFor("upload containing "+trunc(contains, 40), func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "files.completeUploadExternal" && c.Form.Get("thread_ts") == rootTS && strings.Contains(c.Form.Get("content"), contains) {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

// A 4,000-character Docker error: the step message is cut to fit and
// says where the rest is; the whole text is a file in the thread; the
// checkpoint keeps its buttons and does not repeat the error.
func TestLongDockerErrorStaysReadable(t *testing.T) {
	dErr := dockerError()
	if n := len(dErr.Error()); n < 4000 {
		t.Fatalf("the error has %d characters", n)
	}
	bn := &brokenNodes{err: dErr}
	h := newHarness(t, "http", func(s *setup) { bn.Nodes = s.prod.Nodes; s.prod.Nodes = bn })
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	run := h.onlyRun()

	step, _ := h.reply(root.TS, "Stop all app nodes* — failed")
	stepNow := latestOf(h.fs.Calls(), step.TS)
	file := fmt.Sprintf("%s-step-", run.ID)
	if !strings.Contains(stepNow.Text(), "Cut to fit Slack") || !strings.Contains(stepNow.Text(), "`"+file) || !strings.Contains(stepNow.Text(), "nocobot attach "+run.ID) {
		t.Fatalf("the cut step message does not say where the rest is: %q", trunc(stepNow.Text(), 200))
	}
	up := h.uploadIn(root.TS, dErr.Error())
	if up.Form.Get("channel_id") != chProd || !strings.Contains(up.Form.Get("files"), run.ID) {
		t.Fatalf("upload: %v", up.Form)
	}

	cp, _ := h.reply(root.TS, "A step failed: what now?")
	cpNow := latestOf(h.fs.Calls(), cp.TS)
	if n := strings.Count(cpNow.Text(), "Error response from daemon"); n > 1 {
		t.Fatalf("the checkpoint repeats the error %d times: %q", n, trunc(cpNow.Text(), 300))
	}
	if !strings.Contains(cpNow.Text(), "the error shown above") {
		t.Fatalf("the checkpoint does not point at the error: %q", trunc(cpNow.Text(), 300))
	}
	run = h.waitState(run.ID, store.StateFailed)
	v := run.ID + "|" + run.Checkpoint.ID
	if got := cp.Buttons(); len(got) < 2 || got[0] != "nocobot.cp.retry="+v {
		t.Fatalf("checkpoint buttons: %v", got)
	}
	// The root names the options offered, and only those.
	h.fs.waitFor("root names the options", func(cs []apiCall) bool {
		return strings.Contains(latestOf(cs, root.TS).Text(), "Waiting for a decision: ") && strings.Contains(latestOf(cs, root.TS).Text(), "failed ("+choicesOf(run.Checkpoint.Options)+")")
	})
	bn.broken.Store(false) // the daemon is mended
	h.click(uRequest, chProd, cp.TS, "nocobot.cp.retry", v)
	h.reply(root.TS, "Verify checkpoint")
	// The whole error was uploaded once, not again for each edit.
	if n := len(h.fs.Calls("files.completeUploadExternal")); n != 1 {
		t.Fatalf("%d uploads, want 1", n)
	}
}

func choicesOf(as []store.Action) string {
	labels := map[store.Action]string{store.ActionRetry: "Retry", store.ActionRollback: "Roll back", store.ActionAbort: "Abort", store.ActionContinue: "Continue"}
	var ls []string
	for _, a := range as {
		ls = append(ls, labels[a])
	}
	if len(ls) == 1 {
		return ls[0]
	}
	return strings.Join(ls[:len(ls)-1], ", ") + " or " + ls[len(ls)-1]
}

// longPlugins is a maintain command with a plugin list of over 3,000
// characters.
func longPlugins() (cmd, last string) {
	var words []string
	for i := range 24 {
		last = fmt.Sprintf("@nocobase/plugin-workflow-extension-number-%02d-%s", i, strings.Repeat("with-a-very-long-name-", 5))
		words = append(words, "plugin", "enable", last)
	}
	return "maintain " + strings.Join(words, " "), last
}

// A run titled with a long plugin list keeps its root (and so its
// thread): the title is cut, and whole in a file in the thread.
func TestLongPluginListTitle(t *testing.T) {
	h := newHarness(t, "http")
	cmd, last := longPlugins()
	h.command(uRequest, chProd, cmd)
	root := h.rootOf(chProd, "Maintenance of prod")
	if !strings.Contains(root.Text(), "Cut to fit Slack") || !strings.Contains(root.Text(), "in this run's thread") {
		t.Fatalf("the cut root does not say where the rest is: %q", trunc(root.Text(), 200))
	}
	h.uploadIn(root.TS, last)
	h.reply(root.TS, "Verify checkpoint")
	h.fs.ephemeralTo(uRequest, "Started run")
	// The root is edited at every step; its full text is uploaded once.
	roots := 0
	for _, c := range h.fs.Calls("files.completeUploadExternal") {
		if strings.Contains(c.Form.Get("files"), "-root.txt") || strings.Contains(c.Form.Get("files"), ", root") {
			roots++
		}
	}
	if roots != 1 {
		t.Fatalf("the root's full text was uploaded %d times", roots)
	}
}

// Window messages with a long command keep their Skip and Start buttons.
func TestLongWindowCommand(t *testing.T) {
	sched := &fakeScheduler{}
	h := newHarness(t, "http", withScheduler(sched))
	sched.st = h.store
	cmd, _ := longPlugins()
	h.command(uRequest, chProd, `schedule add "0 2 * * 6" `+cmd+` --approval required`)
	h.fs.waitFor("window added", func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && strings.Contains(c.Text(), "scheduled window w1") {
				return true
			}
		}
		return false
	})
	w, err := h.store.GetWindow(context.Background(), "w1")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []struct {
		kind   events.Kind
		button string
	}{
		{events.WindowAnnounced, "nocobot.window.skip"},
		{events.WindowApproval, "nocobot.window.start"},
	} {
		before := len(h.fs.Calls())
		h.bus.Publish(events.Event{Kind: ev.kind, Step: -1, Message: "plain", At: time.Now(), Window: &events.WindowEvent{Window: w, Start: w.NextStart, End: w.NextStart.Add(time.Hour)}})
		var post apiCall
		h.fs.waitFor("window "+string(ev.kind), func(cs []apiCall) bool {
			for _, c := range cs[before:] {
				if c.Method == "chat.postMessage" && strings.Contains(c.Text(), "Maintenance window w1") {
					post = c
					return true
				}
			}
			return false
		})
		want := fmt.Sprintf("%s=w1|%d", ev.button, w.NextStart.Unix())
		if got := post.Buttons(); len(got) != 1 || got[0] != want {
			t.Fatalf("%s buttons %v, want %s", ev.kind, got, want)
		}
		if !strings.Contains(post.Text(), "Cut to fit Slack") {
			t.Fatalf("the cut window message does not say where the rest is: %q", trunc(post.Text(), 200))
		}
	}
	h.command(uStranger, chProd, "schedule list")
	h.fs.ephemeralTo(uStranger, "w1: `0 2 * * 6` UTC, maintain plugin enable")
}
