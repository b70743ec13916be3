package schedule

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/postgres"
)

// Two processes on one SQLite file: each has its own handle on the file.
func TestReplicasPostEachNoticeOnceSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	testReplicasPostEachNoticeOnce(t, openSQLite(t, path), openSQLite(t, path))
}

// Two replicas on one PostgreSQL database: each has its own pool.
func TestReplicasPostEachNoticeOncePostgres(t *testing.T) {
	db := testenv.NewDatabase(t)
	testReplicasPostEachNoticeOnce(t, openPostgres(t, db), openPostgres(t, db))
}

// openPostgres opens a store on the database at db, closed at the end of
// the test; each call has a pool of its own, as another replica would.
func openPostgres(t *testing.T, db string) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, db, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

const replicaRounds = 50

// testReplicasPostEachNoticeOnce races two schedulers, each on its own
// store handle, over every notice of two hourly windows, one starting by
// itself and one asking for approval, for many starts in a row. At each
// step both read the window before either acts on it, so both find the
// same notice due: exactly one of them may post it.
func testReplicasPostEachNoticeOnce(t *testing.T, a, b store.Store) {
	h := newSchedHarnessOn(t, a, t0)
	sa, sb := h.racer(a), h.racer(b)
	ctx := context.Background()
	auto, _, err := sa.Add(ctx, store.Window{Spec: "0 * * * *", Cluster: "prod", Command: "maintain backup",
		Announce: 20 * time.Minute, Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	asks, _, err := sa.Add(ctx, store.Window{Spec: "0 * * * *", Cluster: "staging", Command: "maintain backup",
		Announce: 20 * time.Minute, Duration: 10 * time.Minute, Approval: true})
	if err != nil {
		t.Fatal(err)
	}
	both := []*Scheduler{sa, sb}
	ids := []string{auto.ID, asks.ID}
	for r := range replicaRounds {
		start := t0.Add(time.Duration(r+1) * time.Hour)
		h.setClock(start.Add(-20 * time.Minute))
		raceWindows(t, both, ids, h.clock.Now())
		for _, id := range ids {
			h.expectOne(events.WindowAnnounced, id, start, "")
		}

		h.setClock(start)
		raceWindows(t, both, ids, start)
		h.expectStarts(r+1, "at the start")
		h.expectOne(events.WindowStarted, auto.ID, start, "")
		h.expectOne(events.WindowApproval, asks.ID, start, "")

		// The other replica watches the run too, as after a restart of
		// it while the run goes on.
		sa.restoreTracked(ctx)
		sb.restoreTracked(ctx)
		h.setClock(start.Add(10 * time.Minute))
		together(both, func(s *Scheduler) { s.pass(ctx) })
		raceWindows(t, both, ids, h.clock.Now())
		h.expectOne(events.WindowOverrun, auto.ID, start, "")
		h.expectOne(events.WindowSkipped, asks.ID, start, events.WindowNotApproved)
		h.finishRuns()
		if t.Failed() {
			t.Fatalf("round %d of %d", r+1, replicaRounds)
		}
	}
	h.expect(events.WindowMissed, 0, "after every round")
	h.expect(events.WindowAnnounced, 2*replicaRounds, "after every round")
}

// racer is a second scheduler on the harness's clock and log, on its own
// store handle; the test drives it instead of Run.
func (h *schedHarness) racer(st store.Store) *Scheduler {
	h.t.Helper()
	opts := h.options()
	opts.Store, opts.ConfigWindows = st, nil
	s, err := New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// together calls f for each scheduler at once and waits for them all.
func together(ss []*Scheduler, f func(*Scheduler)) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { f(s) })
	}
	wg.Wait()
}

// raceWindows has each scheduler read the windows, wait until every other
// one has read them too, then do what is due for each, as a pass would.
func raceWindows(t *testing.T, ss []*Scheduler, ids []string, now time.Time) {
	t.Helper()
	var read sync.WaitGroup
	read.Add(len(ss))
	together(ss, func(s *Scheduler) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ws := make([]store.Window, 0, len(ids))
		for _, id := range ids {
			w, err := s.store.GetWindow(context.Background(), id)
			if err != nil {
				t.Error(err)
			}
			ws = append(ws, w)
		}
		read.Done()
		read.Wait()
		for _, w := range ws {
			if w.ID != "" {
				s.window(context.Background(), w, now)
			}
		}
	})
}

// expectOne checks that exactly one event of kind (with reason, if given)
// was published about that start of the window.
func (h *schedHarness) expectOne(kind events.Kind, id string, start time.Time, reason events.WindowReason) {
	h.t.Helper()
	n := 0
	for _, e := range h.of(kind) {
		if e.w.ID == id && e.ev.Start.Equal(start) && (reason == "" || e.ev.Reason == reason) {
			n++
		}
	}
	if n != 1 {
		h.t.Errorf("%d %s events (reason %q) about the start of %s at %s, want 1", n, kind, reason, id, start.Format(time.TimeOnly))
	}
}

// A Skip saved by another replica after this one read the window is not
// undone by the announcement this one records, and the skipped start is
// not announced.
func TestAnnouncementKeepsASkipSavedMeanwhile(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	w := h.add(store.Window{ID: "nightly", Spec: "0 2 * * *", Announce: 30 * time.Minute})
	h.stop()
	stale := h.window(w.ID) // what this replica read
	other, err := New(h.options())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Skip(context.Background(), w.ID, stale.NextStart, "U2"); err != nil {
		t.Fatal(err)
	}
	s, err := New(h.options())
	if err != nil {
		t.Fatal(err)
	}
	s.announce(context.Background(), stale, stale.NextStart.Add(-10*time.Minute))
	if got := h.window(w.ID); !got.Skip.Equal(stale.NextStart) {
		t.Errorf("the skip was undone: %+v", got)
	}
	if n := len(h.of(events.WindowAnnounced)); n != 0 {
		t.Errorf("a skipped start was announced %d times", n)
	}
}
