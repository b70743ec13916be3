package proctest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// pacedOnNewImage is a paced world of nodes a and b stopped on 1.1.0, the
// database at 1.0.0, traffic on the maintenance page.
func pacedOnNewImage(t *testing.T) *World {
	w := NewWorld("nocobase/nocobase:1.0.0", true, "a", "b")
	w.SetPace(Pace{Refused: 20 * time.Millisecond, Boot: 200 * time.Millisecond, Migrate: 400 * time.Millisecond, Poll: 10 * time.Millisecond})
	ctx := context.Background()
	if err := w.SetMode(ctx, ports.LBMaintenance); err != nil {
		t.Fatal(err)
	}
	if err := w.Pull(ctx, "nocobase/nocobase:1.1.0", func(string) {}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := w.Stop(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := w.SetImage(ctx, n, "nocobase/nocobase:1.1.0"); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// A paced world (the demo's cluster) notices two nodes starting on a
// version the database is not at yet.
func TestPacedWorldFlagsUnsafeStarts(t *testing.T) {
	w := pacedOnNewImage(t)
	ctx := context.Background()
	if err := w.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if v := w.Violations(); len(v) != 0 {
		t.Fatalf("one node migrating: %v", v)
	}
	if err := w.Start(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if v := w.Violations(); len(v) == 0 || !strings.Contains(v[0], "b started on nocobase/nocobase:1.1.0 while a was still migrating") {
		t.Fatalf("violations %v", v)
	}
}

// A paced node's health check goes through NocoBase's phases: refused,
// upgrade, start, ok; and the database is at the new version after.
func TestPacedWorldShowsStartPhases(t *testing.T) {
	w := pacedOnNewImage(t)
	ctx := context.Background()
	if err := w.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if s, _ := w.Probe(ctx, "http://a:13000"); s.Listening || s.Healthy {
		t.Fatalf("a node just started answers %+v, want connection refused", s)
	}
	var seen []string
	start := time.Now()
	if err := w.WaitHealthy(ctx, ports.Node{Name: "a"}, func(m string) { seen = append(seen, m) }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("a paced start took %s, less than refused+migrate+boot", took)
	}
	if got := w.DBVersion(); got != "1.1.0" {
		t.Fatalf("after a's start the database is at %q", got)
	}
	text := strings.Join(seen, "\n")
	for _, want := range []string{"a: connection refused (starting)", "APP_COMMANDING upgrade — run migration", "APP_COMMANDING start — load plugin", "a: 200 ok"} {
		if !strings.Contains(text, want) {
			t.Errorf("progress lacks %q:\n%s", want, text)
		}
	}
}
