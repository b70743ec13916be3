package schedule

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// The index hands out windows in the order of their due times, whatever
// the order of changes, and forgets what is removed or unqueued.
func TestIndexOrder(t *testing.T) {
	x := newIndex()
	r := rand.New(rand.NewPCG(1, 2))
	want := map[string]time.Time{}
	for i := range 500 {
		id := fmt.Sprintf("w%03d", r.IntN(200))
		switch r.IntN(5) {
		case 0:
			x.remove(id)
			delete(want, id)
		case 1:
			x.set(id, time.Time{}, uint64(i))
			delete(want, id)
		default:
			due := t0.Add(time.Duration(r.IntN(1000)) * time.Minute)
			x.set(id, due, uint64(i))
			want[id] = due
		}
	}
	var got []string
	for {
		e, ok := x.first()
		if !ok {
			break
		}
		if !e.due.Equal(want[e.id]) {
			t.Fatalf("%s due %s, want %s", e.id, e.due, want[e.id])
		}
		got = append(got, e.id)
		x.set(e.id, time.Time{}, 0)
	}
	if len(got) != len(want) {
		t.Fatalf("%d windows queued, want %d", len(got), len(want))
	}
	if !slices.IsSortedFunc(got, func(a, b string) int {
		if c := want[a].Compare(want[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	}) {
		t.Fatalf("not in due order: %v", got)
	}
}

// A second replica learns at its periodic reload what the first changed:
// new windows, pauses and removals. The compare-and-set in the store still
// lets exactly one of them start a window.
func TestSchedulerReloadSeesOtherReplica(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	b := h.replica()
	ctx := context.Background()
	w := h.add(store.Window{Spec: "0 2 * * *", Announce: 30 * time.Minute})
	other := h.add(store.Window{Spec: "0 3 * * *", Cluster: "staging"})
	if got := b.s.queued(w.ID); !got.IsZero() {
		t.Fatalf("the replica knows a window it has not read yet (due %s)", got)
	}
	// Let the reload timers fire until the replica has read the store
	// (its reload loop may not be waiting yet when the clock first moves).
	announceAt := t0.Add(90 * time.Minute)
	for b.s.queued(w.ID).IsZero() {
		if h.clock.Now().Add(defaultReload).After(announceAt) {
			t.Fatal("the replica never reloaded the windows")
		}
		h.at(h.clock.Now().Add(defaultReload))
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.s.queued(w.ID); !got.Equal(announceAt) {
		t.Errorf("the replica looks at the window at %s, want its announcement at %s", got, announceAt)
	}

	h.at(t0.Add(2 * time.Hour))
	b.sync()
	h.expectStarts(1, "two replicas")
	h.expect(events.WindowStarted, 1, "two replicas")
	h.finishRuns()

	// Paused and removed by the first replica: the second stops looking.
	if _, err := h.s.SetPaused(ctx, w.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Remove(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if n := b.s.indexed(); n != 2 {
		t.Fatalf("replica index before its reload: %d windows", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.s.indexed() != 1 || !b.s.queued(w.ID).IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("after reloads the replica still has %d windows, %s queued at %s", b.s.indexed(), w.ID, b.s.queued(w.ID))
		}
		h.at(h.clock.Now().Add(defaultReload))
		time.Sleep(10 * time.Millisecond)
	}
	h.at(t0.Add(27 * time.Hour))
	b.sync()
	h.expectStarts(1, "paused and removed windows")
}

// Events are facts; a front chooses how people and times read.
func TestWindowEventText(t *testing.T) {
	w := store.Window{ID: "nightly", Cluster: "prod", Command: "maintain backup", TZ: "Europe/Berlin", Duration: time.Hour}
	start := time.Date(2026, 6, 6, 0, 0, 0, 0, time.UTC)
	ev := events.Event{Kind: events.WindowSkipped, At: start.Add(-time.Hour),
		Window: &events.WindowEvent{Window: w, Start: start, By: "U1", Reason: events.WindowAsked}}
	if got, want := Text(ev, Format{}), "Maintenance window nightly (maintain backup on prod): the start of Sat 6 Jun 02:00 CEST is skipped, as asked by U1."; got != want {
		t.Errorf("plain:\n got  %q\n want %q", got, want)
	}
	front := Format{
		Who: func(id string) string { return "<@" + id + ">" },
		When: func(t time.Time, tz string) string {
			return fmt.Sprintf("<!date^%d^{date_short} {time}|%s>", t.Unix(), tz)
		},
	}
	want := fmt.Sprintf("the start of <!date^%d^{date_short} {time}|Europe/Berlin> is skipped, as asked by <@U1>.", start.Unix())
	if got := Text(ev, front); !strings.HasSuffix(got, want) {
		t.Errorf("front's format: %q, want it to end %q", got, want)
	}
	ev.Kind = events.WindowStarted
	ev.Run = store.Run{ID: "r-1"}
	ev.Window.End = start.Add(time.Hour)
	if got := Text(ev, front); !strings.Contains(got, "run r-1 started") || !strings.Contains(got, "(approved by <@U1>)") {
		t.Errorf("started: %q", got)
	}
}
