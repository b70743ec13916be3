package events

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

// A subscriber that stops reading costs a bounded queue; when it reads
// again it learns how many events it missed, and transitions outlive
// progress lines.
func TestStalledSubscriberIsBounded(t *testing.T) {
	b := NewBus()
	s := b.Subscribe()
	defer s.Close()
	// The pump holds one event while nobody reads; the rest queue.
	b.Publish(Event{Kind: StepStarted, Message: "first"})
	time.Sleep(20 * time.Millisecond)
	for i := range 20_000 {
		kind := StepProgress
		if i%200 == 0 {
			kind = StepDone
		}
		b.Publish(Event{Kind: kind, Run: store.Run{ID: "r1"}, Message: fmt.Sprint(i)})
	}
	s.mu.Lock()
	queued := len(s.queue)
	s.mu.Unlock()
	if queued > maxQueued {
		t.Fatalf("%d events queued for a stalled subscriber", queued)
	}
	if ev := <-s.C; ev.Message != "first" {
		t.Fatalf("first event %q", ev.Message)
	}
	ev := <-s.C
	if ev.Kind != Missed || !strings.HasPrefix(ev.Message, "missed ") {
		t.Fatalf("after falling behind: %+v", ev)
	}
	done := 0
	for range queued {
		if e := <-s.C; e.Kind == StepDone {
			done++
		}
	}
	if done != 100 {
		t.Fatalf("%d of 100 transitions kept", done)
	}
}
