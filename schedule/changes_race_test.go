package schedule

import (
	"context"
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

const changeRounds = 40

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
		skip := r%2 == 0
		h.setClock(start.Add(-20 * time.Minute))
		var read sync.WaitGroup
		read.Add(2)
		together([]*Scheduler{sa, sb}, func(s *Scheduler) {
			if s == sb {
				read.Done()
				read.Wait()
				var err error
				if skip {
					err = sb.Skip(ctx, w.ID, start, "U2")
				} else {
					_, err = sb.SetPaused(ctx, w.ID, true)
				}
				if err != nil {
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

		got := h.window(w.ID)
		switch {
		case skip && !got.Skip.Equal(start):
			t.Errorf("round %d: the skip of %s was undone: %+v", r+1, start.Format(time.TimeOnly), got)
		case !skip && !got.Paused:
			t.Errorf("round %d: the pause was undone: %+v", r+1, got)
		}
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

		// At the start, A does what is due: nothing may run.
		h.setClock(start)
		sa.mu.Lock()
		sa.window(ctx, h.window(w.ID), start)
		sa.mu.Unlock()
		h.expectStarts(0, "after a skipped or paused start")
		if !skip {
			h.setClock(start.Add(time.Minute))
			if _, err := sb.SetPaused(ctx, w.ID, false); err != nil {
				t.Fatal(err)
			}
		}
		if got := h.window(w.ID); !got.NextStart.Equal(start.Add(time.Hour)) {
			t.Fatalf("round %d: next start %s, want %s", r+1, got.NextStart.Format(time.TimeOnly), start.Add(time.Hour).Format(time.TimeOnly))
		}
		if t.Failed() {
			t.Fatalf("round %d of %d", r+1, changeRounds)
		}
	}
	t.Logf("%d of %d starts were announced before they were skipped or paused", announced, changeRounds)
}
