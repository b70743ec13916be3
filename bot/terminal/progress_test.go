package terminal

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Progress lines of a step come at most once per interval, one message
// a line (never several joined by ";"), and what is printed is the
// latest message: older ones that came sooner are replaced.
func TestProgressThrottledToTheLatest(t *testing.T) {
	var out bytes.Buffer
	p := &progress{out: &out, every: 2 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.add(t0, 5, "6/10", "load plugin [a], 4/77", "1 s")
	p.add(t0.Add(500*time.Millisecond), 5, "6/10", "load plugin [b], 19/77", "1 s")
	p.add(t0.Add(900*time.Millisecond), 5, "6/10", "load plugin [c], 30/77", "2 s")
	p.due(t0.Add(time.Second))
	if got := strings.Count(out.String(), "\n"); got != 1 {
		t.Fatalf("printed %d lines before the interval:\n%s", got, out.String())
	}
	p.due(t0.Add(2 * time.Second))
	want := "      … 6/10 load plugin [a], 4/77 (1 s)\n      … 6/10 load plugin [c], 30/77 (2 s)\n"
	if out.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", out.String(), want)
	}
	// Steps are throttled apart: another step's message prints at once,
	// and flush prints what waits, the latest of each.
	p.add(t0.Add(2500*time.Millisecond), 5, "6/10", "a", "3 s")
	p.add(t0.Add(2600*time.Millisecond), 6, "7/10", "b", "0 s")
	p.flush(t0.Add(2700 * time.Millisecond))
	for _, l := range []string{"… 7/10 b (0 s)\n", "… 6/10 a (3 s)\n"} {
		if !strings.Contains(out.String(), l) {
			t.Fatalf("no line %q:\n%s", l, out.String())
		}
	}
	if strings.Contains(out.String(), ";") {
		t.Fatalf("messages joined:\n%s", out.String())
	}
}
