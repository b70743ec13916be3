package terminal

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Progress lines closer than the interval are joined, never dropped.
func TestProgressCoalesced(t *testing.T) {
	var out bytes.Buffer
	p := &progress{out: &out, every: 2 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.add(t0, 5, "starting acc-app-2", "1s")
	p.add(t0.Add(500*time.Millisecond), 5, "acc-app-2 healthy", "1s")
	p.add(t0.Add(900*time.Millisecond), 5, "starting acc-app-3", "2s")
	p.due(t0.Add(time.Second))
	if got := strings.Count(out.String(), "\n"); got != 1 {
		t.Fatalf("printed %d lines before the interval:\n%s", got, out.String())
	}
	p.due(t0.Add(2 * time.Second))
	want := "      … starting acc-app-2 (1s)\n      … acc-app-2 healthy; starting acc-app-3 (2s)\n"
	if out.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", out.String(), want)
	}
	// A message of another step flushes what waits first.
	p.add(t0.Add(2500*time.Millisecond), 5, "a", "3s")
	p.add(t0.Add(2600*time.Millisecond), 6, "b", "0s")
	if !strings.Contains(out.String(), "… a (3s)\n") {
		t.Fatalf("the pending line of step 5 was not flushed:\n%s", out.String())
	}
}
