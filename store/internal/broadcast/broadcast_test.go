package broadcast

import (
	"context"
	"errors"
	"testing"
	"time"
)

func recv(t *testing.T, ch <-chan string) (string, bool) {
	t.Helper()
	select {
	case id, ok := <-ch:
		return id, ok
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received within 5 s")
		return "", false
	}
}

func TestFanOutAndEnd(t *testing.T) {
	b := New()
	ctxA, cancelA := context.WithCancel(context.Background())
	a, err := b.Subscribe(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b.Publish("r1")
	if id, _ := recv(t, a); id != "r1" {
		t.Fatalf("a got %q", id)
	}
	if id, _ := recv(t, c); id != "r1" {
		t.Fatalf("c got %q", id)
	}
	cancelA()
	if _, ok := recv(t, a); ok {
		t.Fatal("a's channel stays open after its context ended")
	}
	if n := b.Len(); n != 1 {
		t.Fatalf("Len = %d after one subscriber left, want 1", n)
	}
	b.Close()
	if _, ok := recv(t, c); ok {
		t.Fatal("c's channel stays open after Close")
	}
	if _, err := b.Subscribe(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
	}
}

// A subscriber that never reads does not hold up the others.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	b := New()
	defer b.Close()
	if _, err := b.Subscribe(context.Background()); err != nil {
		t.Fatal(err)
	}
	fast, _ := b.Subscribe(context.Background())
	done := make(chan struct{})
	go func() {
		for range 1000 {
			b.Publish("r1")
		}
		close(done)
	}()
	n := 0
	for {
		select {
		case <-fast:
			n++
		case <-done:
			if n == 0 {
				t.Fatal("the reading subscriber got nothing")
			}
			return
		case <-time.After(5 * time.Second):
			t.Fatal("Publish blocked on a subscriber that does not read")
		}
	}
}
