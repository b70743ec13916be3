package schedule

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/store"
)

// Two processes on one SQLite file: one records announcements while the
// other skips or pauses the same starts.
func TestAnnouncementRacesSkipAndPauseSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	testAnnouncementRacesSkipAndPause(t, openSQLite(t, path), openSQLite(t, path))
}

// The same with two replicas on one PostgreSQL database.
func TestAnnouncementRacesSkipAndPausePostgres(t *testing.T) {
	db := testenv.NewDatabase(t)
	testAnnouncementRacesSkipAndPause(t, openPostgres(t, db), openPostgres(t, db))
}

// Two processes on one SQLite file: one starts with a changed config file
// while the other skips or pauses the config window.
func TestConfigSyncRacesSkipAndPauseSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	testConfigSyncRacesSkipAndPause(t, openSQLite(t, path), openSQLite(t, path))
}

// The same with two replicas on one PostgreSQL database.
func TestConfigSyncRacesSkipAndPausePostgres(t *testing.T) {
	db := testenv.NewDatabase(t)
	testConfigSyncRacesSkipAndPause(t, openPostgres(t, db), openPostgres(t, db))
}

const changeRounds = 40

// skipOrPause is what the other replica does in round r: skip the start
// (even rounds) or pause the window (odd rounds).
func skipOrPause(ctx context.Context, s *Scheduler, id string, start time.Time, r int) error {
	if r%2 == 0 {
		return s.Skip(ctx, id, start, "U2")
	}
	_, err := s.SetPaused(ctx, id, true)
	return err
}

// checkSkippedOrPaused checks that round r's skip or pause stands, and
// then lets the start pass: nothing may run. A paused window is resumed
// after its start, so the next round has the next start.
func (h *schedHarness) checkSkippedOrPaused(s, other *Scheduler, id string, start time.Time, r int) store.Window {
	h.t.Helper()
	got := h.window(id)
	switch {
	case r%2 == 0 && !got.Skip.Equal(start):
		h.t.Errorf("round %d: the skip of %s was undone: %+v", r+1, start.Format(time.TimeOnly), got)
	case r%2 == 1 && !got.Paused:
		h.t.Errorf("round %d: the pause was undone: %+v", r+1, got)
	}
	h.setClock(start)
	s.mu.Lock()
	s.window(context.Background(), h.window(id), start)
	s.mu.Unlock()
	h.expectStarts(0, "after a skipped or paused start")
	if r%2 == 1 {
		h.setClock(start.Add(time.Minute))
		if _, err := other.SetPaused(context.Background(), id, false); err != nil {
			h.t.Fatal(err)
		}
	}
	if next := h.window(id).NextStart; !next.Equal(start.Add(time.Hour)) {
		h.t.Fatalf("round %d: next start %s, want %s", r+1, next.Format(time.TimeOnly), start.Add(time.Hour).Format(time.TimeOnly))
	}
	return got
}

// testConfigSyncRacesSkipAndPause starts scheduler A, on its own store
// handle, with a config file whose window has a new command each round,
// while scheduler B, on another, skips its next start or pauses it at
// the same moment. The file's change and B's must both stand.
func testConfigSyncRacesSkipAndPause(t *testing.T, a, b store.Store) {
	h := newSchedHarnessOn(t, a, t0)
	sb := h.racer(b)
	ctx := context.Background()
	withConfig := func(command string) *Scheduler {
		opts := h.options()
		opts.Store = a
		opts.ConfigWindows = []store.Window{{ID: "nightly", Cluster: "prod", Spec: "0 * * * *", Command: command,
			Announce: 20 * time.Minute, Duration: 10 * time.Minute}}
		s, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := withConfig("maintain backup").syncConfig(ctx); err != nil {
		t.Fatal(err)
	}
	for r := range changeRounds {
		start := t0.Add(time.Duration(r+1) * time.Hour)
		h.setClock(start.Add(-30 * time.Minute))
		command := fmt.Sprintf("maintain backup round-%d", r+1)
		sa := withConfig(command)
		var ready sync.WaitGroup
		ready.Add(2)
		together([]*Scheduler{sa, sb}, func(s *Scheduler) {
			ready.Done()
			ready.Wait()
			var err error
			if s == sb {
				err = skipOrPause(ctx, sb, "nightly", start, r)
			} else {
				_, err = sa.syncConfig(ctx)
			}
			if err != nil {
				t.Error(err)
			}
		})
		if got := h.checkSkippedOrPaused(sa, sb, "nightly", start, r); got.Command != command {
			t.Errorf("round %d: the config file's command was not saved: %+v", r+1, got)
		}
		if t.Failed() {
			t.Fatalf("round %d of %d", r+1, changeRounds)
		}
	}
}

// testAnnouncementRacesSkipAndPause has scheduler A, on its own store
// handle, announce each start of an hourly window while scheduler B, on
// another, skips that start (even rounds) or pauses the window (odd
// rounds) at the same moment. Whichever lands first, both changes must
// stand: the start is neither run nor left unskipped or unpaused, and an
// announcement that was posted stays recorded.
func testAnnouncementRacesSkipAndPause(t *testing.T, a, b store.Store) {
	h := newSchedHarnessOn(t, a, t0)
	sa, sb := h.racer(a), h.racer(b)
	ctx := context.Background()
	w, _, err := sa.Add(ctx, store.Window{Spec: "0 * * * *", Cluster: "prod", Command: "maintain backup",
		Announce: 20 * time.Minute, Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	announced := 0
	for r := range changeRounds {
		start := t0.Add(time.Duration(r+1) * time.Hour)
		h.setClock(start.Add(-20 * time.Minute))
		var read sync.WaitGroup
		read.Add(2)
		together([]*Scheduler{sa, sb}, func(s *Scheduler) {
			if s == sb {
				read.Done()
				read.Wait()
				if err := skipOrPause(ctx, sb, w.ID, start, r); err != nil {
					t.Error(err)
				}
				return
			}
			// A reads the window as a pass does, then acts on it.
			s.mu.Lock()
			defer s.mu.Unlock()
			cur, err := s.store.GetWindow(ctx, w.ID)
			read.Done()
			read.Wait()
			if err != nil {
				t.Error(err)
				return
			}
			s.window(ctx, cur, h.clock.Now())
		})

		got := h.checkSkippedOrPaused(sa, sb, w.ID, start, r)
		posted := 0
		for _, e := range h.of(events.WindowAnnounced) {
			if e.ev.Start.Equal(start) {
				posted++
			}
		}
		if posted > 1 {
			t.Errorf("round %d: the start at %s was announced %d times", r+1, start.Format(time.TimeOnly), posted)
		}
		if posted == 1 && !got.Announced.Equal(start) {
			t.Errorf("round %d: the announcement of %s was posted but its record was undone: %+v", r+1, start.Format(time.TimeOnly), got)
		}
		announced += posted
		if t.Failed() {
			t.Fatalf("round %d of %d", r+1, changeRounds)
		}
	}
	t.Logf("%d of %d starts were announced before they were skipped or paused", announced, changeRounds)
}

// interposed runs before once, just before the first window write of the
// scheduler that uses it: another replica's change lands between this
// scheduler's read of the window and its write.
type interposed struct {
	store.Store
	once   sync.Once
	before func()
}

func (s *interposed) UpdateWindow(ctx context.Context, id string, change func(*store.Window) error) (store.Window, error) {
	s.once.Do(s.before)
	return s.Store.UpdateWindow(ctx, id, change)
}

func (s *interposed) AdvanceWindow(ctx context.Context, id string, from, to time.Time) (bool, error) {
	s.once.Do(s.before)
	return s.Store.AdvanceWindow(ctx, id, from, to)
}

// A Skip or a pause saved by another replica after the scheduler read a
// window whose start has come, but before it took the start, is seen:
// nothing runs. A Skip that comes after the start was taken is refused
// as passed, so no click is ever shown as done while the run starts.
func TestStartSeesASkipSavedMeanwhile(t *testing.T) {
	for _, pause := range []bool{false, true} {
		t.Run(map[bool]string{false: "skip", true: "pause"}[pause], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nocobot.db")
			h := newSchedHarnessOn(t, openSQLite(t, path), t0)
			other := h.racer(openSQLite(t, path))
			ctx := context.Background()
			h.start()
			w := h.add(store.Window{Spec: "0 * * * *", Duration: 10 * time.Minute})
			h.stop()
			start := w.NextStart
			h.setClock(start)
			read := h.window(w.ID) // the scheduler's pass read it here
			sa := h.racer(&interposed{Store: h.st, before: func() {
				var err error
				if pause {
					_, err = other.SetPaused(ctx, w.ID, true)
				} else {
					err = other.Skip(ctx, w.ID, start, "U2")
				}
				if err != nil {
					t.Errorf("the other replica's change: %v", err)
				}
			}})
			sa.mu.Lock()
			sa.window(ctx, read, start)
			sa.mu.Unlock()
			h.expectStarts(0, "after a start skipped or paused meanwhile")
			got := h.window(w.ID)
			if pause && !got.Paused || !pause && !got.Skip.Equal(start) {
				t.Errorf("the other replica's change was undone: %+v", got)
			}
		})
	}
	// After the start was taken, a Skip of it is refused.
	path := filepath.Join(t.TempDir(), "nocobot.db")
	h := newSchedHarnessOn(t, openSQLite(t, path), t0)
	h.start()
	w := h.add(store.Window{Spec: "0 * * * *", Duration: 10 * time.Minute})
	h.stop()
	h.setClock(w.NextStart)
	s := h.racer(h.st)
	s.mu.Lock()
	s.window(context.Background(), h.window(w.ID), w.NextStart)
	s.mu.Unlock()
	h.expectStarts(1, "at the start")
	if err := h.racer(openSQLite(t, path)).Skip(context.Background(), w.ID, w.NextStart, "U2"); err == nil || !strings.Contains(err.Error(), "already passed") {
		t.Errorf("a Skip after the start: %v", err)
	}
}

// A pause saved while a replica was about to announce a start, and
// resumed before that start, leaves the start to be announced once.
func TestAnnouncementAfterAPauseAndResumeMeanwhile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	h := newSchedHarnessOn(t, openSQLite(t, path), t0)
	other := h.racer(openSQLite(t, path))
	ctx := context.Background()
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *", Announce: 30 * time.Minute})
	h.stop()
	now := w.NextStart.Add(-10 * time.Minute)
	h.setClock(now)
	read := h.window(w.ID)
	sa := h.racer(&interposed{Store: h.st, before: func() {
		if _, err := other.SetPaused(ctx, w.ID, true); err != nil {
			t.Error(err)
		}
	}})
	sa.mu.Lock()
	sa.announce(ctx, read, now)
	sa.mu.Unlock()
	h.expect(events.WindowAnnounced, 0, "while paused")
	if _, err := other.SetPaused(ctx, w.ID, false); err != nil {
		t.Fatal(err)
	}
	resumed := h.window(w.ID)
	if !resumed.NextStart.Equal(w.NextStart) {
		t.Fatalf("resumed to %s, want %s", resumed.NextStart, w.NextStart)
	}
	sa.mu.Lock()
	sa.announce(ctx, resumed, now)
	sa.announce(ctx, h.window(w.ID), now)
	sa.mu.Unlock()
	h.expect(events.WindowAnnounced, 1, "after the resume")
}
