package schedule

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures"
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
		for _, e := range h.of(procedures.EventWindowAnnounced) {
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
