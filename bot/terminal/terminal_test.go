package terminal_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
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

// front is a terminal front on a real engine and dispatcher.
func front(t *testing.T, w *proctest.World, in io.Reader, out io.Writer, user string) *terminal.Front {
	eng := engine(t, w)
	d, err := bot.New(bot.Options{Config: &config.Config{Clusters: []config.Cluster{{Name: "prod"}}}, Engine: eng, TrustTerminal: true, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return terminal.New(d, eng, in, out, bot.Caller{User: user, Via: bot.ViaTerminal, Prefix: "nocobot run"})
}

func engine(t *testing.T, w *proctest.World) *procedures.Engine {
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
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	time.Sleep(5 * time.Millisecond)
	return eng
}

func TestUpgradeAtTheTerminal(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	in, inW := io.Pipe()
	out := &syncBuf{}
	f := front(t, w, in, out, "terminal:alice")
	go func() {
		// A typo first: it is refused and asked again.
		for !strings.Contains(out.String(), "Answer continue / rollback / abort") {
			time.Sleep(5 * time.Millisecond)
		}
		io.WriteString(inW, "retry\ncontinue\n")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	end, err := f.Run(ctx, bot.Command{Name: procedures.ProcUpgrade, Cluster: "prod", Proc: procedures.Request{Procedure: procedures.ProcUpgrade, Version: "1.7.14", Cluster: "prod"}}, "nocobot run upgrade 1.7.14")
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"(10 steps)", "▶ 1/10 Preflight", "✔ 3/10 done in", "stopped app-1, app-2",
		"? prod runs 1.7.14 on one node (nocobase/nocobase:1.7.14)", "Check: http://app-1:13000",
		`"retry" is not an option here.`, "terminal:alice chose continue",
		"▶ 9/10 Load balancer back", "▶ 10/10 Export the backup", "Upgrade of prod from 1.7.13 to 1.7.14 succeeded",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q\n%s", want, text)
		}
	}
	if end.State != store.StateSucceeded || w.NodeState("app-2") != "running nocobase/nocobase:1.7.14" {
		t.Fatalf("state %s, app-2 %s", end.State, w.NodeState("app-2"))
	}
}

func TestInputEndsAtCheckpoint(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1")
	f := front(t, w, strings.NewReader(""), io.Discard, "terminal:bob")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := f.Run(ctx, bot.Command{Name: procedures.ProcMaintain, Cluster: "prod", Proc: procedures.Request{Procedure: procedures.ProcMaintain}}, "nocobot run maintain")
	if err == nil || !strings.Contains(err.Error(), "waits at its checkpoint") {
		t.Fatalf("err = %v", err)
	}
}
