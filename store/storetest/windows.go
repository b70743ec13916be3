package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

func testWindows(t *testing.T, s store.Store) {
	w := store.Window{ID: "w1", Cluster: "prod", Spec: "0 2 * * 6", TZ: "Europe/Berlin", Command: "upgrade 1.7.14",
		Duration: 2 * time.Hour, Announce: 30 * time.Minute, Approval: true, CreatedBy: "U1", Created: t0,
		NextStart: t0.Add(24 * time.Hour)}
	if err := s.PutWindow(ctx(t), w); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetWindow(ctx(t), "w1")
	if err != nil || got.Spec != w.Spec || got.TZ != w.TZ || got.Duration != w.Duration || !got.NextStart.Equal(w.NextStart) || !got.Approval {
		t.Fatalf("GetWindow = %+v, %v", got, err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.AdvanceWindow(context.Background(), "w1", w.NextStart, w.NextStart.Add(7*24*time.Hour))
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("10 replicas advancing one start: %d won, want 1", wins.Load())
	}
	got, _ = s.GetWindow(ctx(t), "w1")
	if !got.NextStart.Equal(w.NextStart.Add(7 * 24 * time.Hour)) {
		t.Fatalf("NextStart = %v after advance", got.NextStart)
	}
	if err := s.PutWindow(ctx(t), store.Window{ID: "w2", Cluster: "staging", Spec: "@weekly", TZ: "UTC", Command: "start"}); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListWindows(ctx(t))
	if len(list) != 2 {
		t.Fatalf("ListWindows = %d windows, want 2", len(list))
	}
	if err := s.DeleteWindow(ctx(t), "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWindow(ctx(t), "w1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}
	if _, err := s.GetWindow(ctx(t), "w1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWindow after delete = %v, want ErrNotFound", err)
	}
}

func testUpdateWindow(t *testing.T, s store.Store) {
	called := false
	if _, err := s.UpdateWindow(ctx(t), "nope", func(*store.Window) error { called = true; return nil }); !errors.Is(err, store.ErrNotFound) || called {
		t.Fatalf("UpdateWindow(nope) = %v (change called: %v), want ErrNotFound without a call", err, called)
	}
	w := store.Window{ID: "w1", Cluster: "prod", Spec: "0 2 * * 6", TZ: "UTC", Command: "upgrade 1.7.14",
		Duration: time.Hour, Announce: 30 * time.Minute, NextStart: t0.Add(24 * time.Hour)}
	if err := s.PutWindow(ctx(t), w); err != nil {
		t.Fatal(err)
	}

	refused := errors.New("not now")
	got, err := s.UpdateWindow(ctx(t), "w1", func(w *store.Window) error {
		w.Paused, w.Skip = true, w.NextStart
		return refused
	})
	if !errors.Is(err, refused) || err.Error() != refused.Error() {
		t.Fatalf("UpdateWindow with a refusing change = %+v, %v; want the change's own error", got, err)
	}
	if after, err := s.GetWindow(ctx(t), "w1"); err != nil || after.Paused || !after.Skip.IsZero() {
		t.Fatalf("a refused change was written: %+v, %v", after, err)
	}
	if _, err := s.UpdateWindow(ctx(t), "w1", func(w *store.Window) error { w.ID = "w2"; w.Paused = true; return nil }); err == nil {
		t.Fatal("UpdateWindow renamed a window")
	}
	if after, err := s.GetWindow(ctx(t), "w1"); err != nil || after.Paused {
		t.Fatalf("a refused rename was written: %+v, %v", after, err)
	}
	if _, err := s.GetWindow(ctx(t), "w2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused rename left window w2: %v", err)
	}

	got, err = s.UpdateWindow(ctx(t), "w1", func(w *store.Window) error {
		w.Announced, w.Cluster = w.NextStart, "staging"
		return nil
	})
	if err != nil || !got.Announced.Equal(w.NextStart) || got.Cluster != "staging" || got.Spec != w.Spec {
		t.Fatalf("UpdateWindow = %+v, %v", got, err)
	}
	after, err := s.GetWindow(ctx(t), "w1")
	if err != nil || !after.Announced.Equal(w.NextStart) || after.Cluster != "staging" || after.Command != w.Command || !after.NextStart.Equal(w.NextStart) {
		t.Fatalf("after UpdateWindow the window reads %+v, %v", after, err)
	}
	// A change that changes nothing returns the window as it is.
	got, err = s.UpdateWindow(ctx(t), "w1", func(*store.Window) error { return nil })
	if err != nil || !got.Announced.Equal(w.NextStart) || got.Cluster != "staging" {
		t.Fatalf("UpdateWindow without a change = %+v, %v", got, err)
	}
}

// Writers changing one window at once each see the others' changes: none
// is lost, as it would be with a read and a whole-record write.
func testUpdateWindowConcurrent(t *testing.T, s store.Store) {
	const writers, rounds = 8, 15
	start := t0.Add(24 * time.Hour)
	if err := s.PutWindow(ctx(t), store.Window{ID: "w1", Cluster: "prod", Spec: "@daily", TZ: "UTC", Command: "start", NextStart: start}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for range rounds {
				_, err := s.UpdateWindow(context.Background(), "w1", func(w *store.Window) error {
					w.Duration += time.Minute
					if i == 0 {
						w.Skip = start
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A compare-and-set of the start beside them is kept too.
	wg.Go(func() {
		if ok, err := s.AdvanceWindow(context.Background(), "w1", start, start.Add(24*time.Hour)); err != nil || !ok {
			t.Errorf("AdvanceWindow beside UpdateWindow = %v, %v", ok, err)
		}
	})
	wg.Wait()
	got, err := s.GetWindow(ctx(t), "w1")
	if err != nil {
		t.Fatal(err)
	}
	if want := writers * rounds * time.Minute; got.Duration != want || !got.Skip.Equal(start) || !got.NextStart.Equal(start.Add(24*time.Hour)) {
		t.Fatalf("after %d concurrent changes: duration %s (want %s), skip %s, next start %s", writers*rounds, got.Duration, want, got.Skip, got.NextStart)
	}
}
