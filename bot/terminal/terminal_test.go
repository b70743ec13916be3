package terminal_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitFor waits until out holds want.
func waitFor(t *testing.T, out *syncBuf, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q:\n%s", want, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type setup struct {
	eng   *procedures.Engine
	store store.Store
	disp  *bot.Dispatcher
}

// world is a real engine (on a real SQLite store) and dispatcher over an
// in-process stand-in cluster.
func world(t *testing.T, w *proctest.World) setup {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "n.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := procedures.New(procedures.Options{Store: s, Clusters: []*procedures.Cluster{w.Cluster("prod")}, Log: zerolog.Nop(), PollEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.RunOwn(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	d, err := bot.New(bot.Options{Config: &config.Config{Clusters: []config.Cluster{{Name: "prod"}}}, Engine: eng, TrustTerminal: true, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return setup{eng: eng, store: s, disp: d}
}

func (s setup) front(lines <-chan terminal.Line, out io.Writer, user string, opts terminal.Options) *terminal.Front {
	opts.PollEvery = 20 * time.Millisecond
	return terminal.New(s.disp, s.eng, lines, out, bot.Caller{User: user, Via: bot.ViaTerminal, Prefix: "nocobot"}, opts)
}

func upgrade() []string { return []string{procedures.ProcUpgrade, "1.7.14", "prod"} }

func maintain() []string { return []string{procedures.ProcMaintain, "prod"} }

func TestUpgradeAtTheTerminal(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	s := world(t, w)
	lines := make(chan terminal.Line)
	out := &syncBuf{}
	f := s.front(lines, out, "terminal:alice", terminal.Options{})
	go func() {
		waitFor(t, out, "Choices: 1) continue  2) rollback  3) abort")
		// A word that is not a choice is refused and asked again.
		lines <- terminal.Line{Text: "retry"}
		lines <- terminal.Line{Text: "1"}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	end, err := f.Start(ctx, upgrade(), "nocobot run upgrade 1.7.14")
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"(11 steps)", "▶ 1/11 Preflight", "✔ 3/11 done in", "stopped app-1, app-2",
		"1.7.14 on one node (nocobase/nocobase:1.7.14). Check it works", "Check: http://app-1:13000",
		`"retry" is not an option here.`, "Continue, chosen by terminal:alice (terminal)",
		"▶ 10/11 Load balancer back", "▶ 11/11 Export the backup", "Upgrade of prod from 1.7.13 to 1.7.14 succeeded",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q\n%s", want, text)
		}
	}
	if strings.Count(text, "▶ 10/11") != 1 {
		t.Errorf("a step was printed twice (events and store both seen):\n%s", text)
	}
	if end.Left || end.Run.State != store.StateSucceeded || w.NodeState("app-2") != "running nocobase/nocobase:1.7.14" {
		t.Fatalf("end %+v, app-2 %s", end, w.NodeState("app-2"))
	}
	// The answer is in the audit log with its run and outcome.
	got, _ := s.store.Audit(ctx, store.AuditQuery{RunID: end.Run.ID})
	found := false
	for _, a := range got {
		found = found || (strings.HasPrefix(a.Action, "answer continue run "+end.Run.ID) && a.Outcome == "ok: continue" && a.User == "terminal:alice" && a.Via == "terminal")
	}
	if !found {
		t.Fatalf("audit lacks the terminal's answer: %+v", got)
	}
}

// Without a person, the end of input follows --on-interrupt: leave says
// the run id and the command that continues it, and releases the run.
func TestInputEndsWithoutAPersonLeaves(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1")
	s := world(t, w)
	lines := make(chan terminal.Line, 1)
	out := &syncBuf{}
	f := s.front(lines, out, "terminal:bob", terminal.Options{OnInterrupt: terminal.Leave})
	// The input ends at once; the run goes on until it needs an answer.
	close(lines)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	end, err := f.Start(ctx, maintain(), "nocobot run maintain")
	if err != nil {
		t.Fatal(err)
	}
	id := end.Run.ID
	text := out.String()
	if !end.Left || !strings.Contains(text, "Left run "+id+" as it is: waiting for a decision") ||
		!strings.Contains(text, "Continue it with: nocobot attach "+id) || !strings.Contains(text, "nocobot decide "+id+" continue|rollback|abort") {
		t.Fatalf("end %+v\n%s", end, text)
	}
	r, err := s.store.GetRun(ctx, id)
	if err != nil || r.Owner != "" || r.State != store.StateWaiting {
		t.Fatalf("left run: owner %q state %s (%v); want released and waiting", r.Owner, r.State, err)
	}
	// Attach takes it over here at once and answers it.
	out2 := &syncBuf{}
	lines2 := make(chan terminal.Line, 2)
	lines2 <- terminal.Line{Text: "continue"} // the manual window
	go func() {
		waitFor(t, out2, "Continue, chosen by terminal:carol")
		waitFor(t, out2, "asks: Check that NocoBase works")
		lines2 <- terminal.Line{Text: "done"}
	}()
	end, err = s.front(lines2, out2, "terminal:carol", terminal.Options{}).Attach(ctx, id, "nocobot attach "+id)
	if err != nil || end.Run.State != store.StateSucceeded {
		t.Fatalf("attach: %+v, %v\n%s", end, err, out2.String())
	}
	if !strings.Contains(out2.String(), "no other process drives it, so this one does now") {
		t.Fatalf("attach output:\n%s", out2.String())
	}
}

// At a terminal, Ctrl-C asks; abort ends the run safely and the summary
// says what serves and how traffic comes back.
func TestInterruptAsksAndAborts(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	s := world(t, w)
	lines := make(chan terminal.Line, 4)
	ints := make(chan struct{}, 1)
	out := &syncBuf{}
	f := s.front(lines, out, "terminal:dave", terminal.Options{Interactive: true, Interrupts: ints})
	go func() {
		waitFor(t, out, "Choices:")
		ints <- struct{}{}
		waitFor(t, out, "Choose a, l or k")
		lines <- terminal.Line{Text: "a"}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	end, err := f.Start(ctx, upgrade(), "nocobot run upgrade 1.7.14")
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"Interrupted. Run " + end.Run.ID + " is waiting for a decision", "leave it as it is, to continue later with nocobot attach " + end.Run.ID,
		"Aborting run " + end.Run.ID, "aborted", "Traffic: maintenance page (503).",
		"To bring traffic back: nocobot traffic on prod (once the nodes serve), or nocobot run start prod",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q\n%s", want, text)
		}
	}
	if end.Left || end.Run.State != store.StateAborted {
		t.Fatalf("end %+v", end)
	}
}

// Text from elsewhere never acts on the operator's terminal.
func TestClean(t *testing.T) {
	in := "a\x1b[31mred\x1b]0;title\x07\x00b\u009bc\nd\te"
	got := terminal.Clean(in)
	if regexp.MustCompile("[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f]").MatchString(got) {
		t.Fatalf("control characters left: %q", got)
	}
	if got != `a\x1b[31mred\x1b]0;title\x07\x00b\x9bc`+"\nd\te" {
		t.Fatalf("Clean = %q", got)
	}
	if terminal.CleanLine("a\nb") != `a\nb` {
		t.Fatalf("CleanLine kept a newline")
	}
	if got := terminal.Cut(strings.Repeat("x", 30), 10); got != "xxxxxxxxxx… (20 more characters)" {
		t.Fatalf("Cut = %q", got)
	}
}
