package schedule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// published is one window event as a front would receive it.
type published struct {
	kind events.Kind
	ev   events.WindowEvent
	w    store.Window
	run  *store.Run
	msg  string
	at   time.Time // the clock when it was published
}

// schedHarness runs a Scheduler on a real SQLite store with a fake clock; a
// restart is a new Scheduler on the same store.
type schedHarness struct {
	t      *testing.T
	st     store.Store
	clock  *proctest.Clock
	config []store.Window
	grace  time.Duration

	mu       sync.Mutex
	events   []published
	starts   []time.Time // clock at each start
	requests []procedures.Request
	nrun     int

	s      *Scheduler
	cancel context.CancelFunc
	done   chan error
	passed chan int64
}

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) // a Monday

func newSchedHarness(t *testing.T, start time.Time) *schedHarness {
	t.Helper()
	return newSchedHarnessOn(t, openSQLite(t, filepath.Join(t.TempDir(), "nocobot.db")), start)
}

// newSchedHarnessOn is a harness on a store the test opened (and closes).
func newSchedHarnessOn(t *testing.T, st store.Store, start time.Time) *schedHarness {
	h := &schedHarness{t: t, st: st, clock: proctest.NewClock(start)}
	t.Cleanup(h.stop)
	return h
}

// openSQLite opens the SQLite file at path, closed at the end of the test;
// each call is a handle of its own, as another process's would be.
func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// Publish records a window event as the fronts would receive it.
func (h *schedHarness) Publish(full events.Event) {
	kind, ev, msg := full.Kind, *full.Window, full.Message
	var run *store.Run
	if full.Run.ID != "" {
		run = &full.Run
	}
	if strings.Contains(msg, "<@") || strings.Contains(msg, "\n") {
		h.t.Errorf("%s: the scheduler's text %q holds a front's formatting or more than one line", kind, msg)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, published{kind: kind, ev: ev, w: ev.Window, run: run, msg: msg, at: h.clock.Now()})
}

// startRun stands in for the engine's Start: it records the run in the
// store, where the cluster lock makes a second run on a busy cluster fail.
func (h *schedHarness) startRun(ctx context.Context, req procedures.Request) (store.Run, error) {
	h.mu.Lock()
	h.nrun++
	id := fmt.Sprintf("r-%d", h.nrun)
	h.mu.Unlock()
	r := store.Run{ID: id, Cluster: req.Cluster, Procedure: req.Procedure, Requester: req.Requester, Via: req.Via,
		State: store.StateRunning, Created: h.clock.Now(), Updated: h.clock.Now()}
	got, err := h.st.CreateRun(ctx, r)
	if errors.Is(err, store.ErrClusterBusy) {
		return store.Run{}, &procedures.BusyError{Run: got}
	}
	if err != nil {
		return store.Run{}, err
	}
	h.mu.Lock()
	h.starts = append(h.starts, h.clock.Now())
	h.requests = append(h.requests, req)
	h.mu.Unlock()
	return got, nil
}

// parseCommand stands in for the command language: the first word names
// the procedure, an unknown one is refused.
func parseCommand(command string) (procedures.Request, error) {
	words := strings.Fields(command)
	if len(words) == 0 {
		return procedures.Request{}, errors.New("no procedure")
	}
	switch words[0] {
	case procedures.ProcUpgrade, procedures.ProcMaintain, procedures.ProcStart:
		return procedures.Request{Procedure: words[0]}, nil
	}
	return procedures.Request{}, fmt.Errorf("unknown procedure %q", words[0])
}

func (h *schedHarness) options() Options {
	return Options{
		Store: h.st, Clock: h.clock, Log: zerolog.Nop(), Events: h,
		Parse: parseCommand, Start: h.startRun, MissedGrace: h.grace, ConfigWindows: h.config,
	}
}

func (h *schedHarness) start() {
	h.t.Helper()
	s, err := New(h.options())
	if err != nil {
		h.t.Fatal(err)
	}
	h.passed = make(chan int64, 1000)
	s.afterPass = func(n int64) { h.passed <- n }
	ctx, cancel := context.WithCancel(context.Background())
	h.s, h.cancel, h.done = s, cancel, make(chan error, 1)
	go func() { h.done <- s.Run(ctx) }()
	h.waitPass(1)
}

// stop is the bot going down.
func (h *schedHarness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

func (h *schedHarness) restart() {
	h.stop()
	h.start()
}

func (h *schedHarness) waitPass(n int64) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-h.passed:
			if got >= n {
				return
			}
		case <-deadline:
			h.t.Fatalf("the scheduler did not finish pass %d", n)
		}
	}
}

// sync waits until a pass that began after now has finished: everything
// due at the clock's time has been done.
func (h *schedHarness) sync() {
	h.t.Helper()
	n := h.s.passes.Load()
	h.s.nudge()
	h.waitPass(n + 1)
}

// at moves the clock (while the bot is up) and lets the scheduler catch up.
func (h *schedHarness) at(t time.Time) {
	h.t.Helper()
	h.setClock(t)
	if h.cancel != nil {
		h.sync()
	}
}

// setClock moves the clock forward to t (while the bot is down, nothing
// catches up).
func (h *schedHarness) setClock(t time.Time) {
	h.t.Helper()
	d := t.Sub(h.clock.Now())
	if d < 0 {
		h.t.Fatalf("the clock cannot go back from %s to %s", h.clock.Now(), t)
	}
	h.clock.Advance(d)
}

func (h *schedHarness) of(kind events.Kind) []published {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []published
	for _, e := range h.events {
		if e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *schedHarness) startCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.starts)
}

func (h *schedHarness) add(w store.Window) store.Window {
	h.t.Helper()
	if w.Cluster == "" {
		w.Cluster = "prod"
	}
	if w.Command == "" {
		w.Command = "maintain backup"
	}
	saved, _, err := h.s.Add(context.Background(), w)
	if err != nil {
		h.t.Fatal(err)
	}
	h.sync()
	return saved
}

func (h *schedHarness) window(id string) store.Window {
	h.t.Helper()
	w, err := h.st.GetWindow(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

func (h *schedHarness) finishRuns() {
	h.t.Helper()
	runs, err := h.st.UnfinishedRuns(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range runs {
		r.State, r.Ended = store.StateSucceeded, h.clock.Now()
		if err := h.st.UpdateRun(context.Background(), r); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *schedHarness) expect(kind events.Kind, n int, what string) []published {
	h.t.Helper()
	got := h.of(kind)
	if len(got) != n {
		var msgs []string
		for _, e := range got {
			msgs = append(msgs, e.msg)
		}
		h.t.Fatalf("%s: %d %s events, want %d: %q", what, len(got), kind, n, msgs)
	}
	return got
}

func (h *schedHarness) expectStarts(n int, what string) {
	h.t.Helper()
	if got := h.startCount(); got != n {
		h.t.Fatalf("%s: %d runs started, want %d", what, got, n)
	}
}

// indexed is the number of windows in the scheduler's index.
func (s *Scheduler) indexed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idx.len()
}

// queued says when the index next looks at a window (zero: not queued or
// unknown).
func (s *Scheduler) queued(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.idx.byID[id]; ok {
		return e.due
	}
	return time.Time{}
}

// replica is a second scheduler on the harness's store and clock, as
// another bot process would run; its events land in the same log.
type replica struct {
	t      *testing.T
	s      *Scheduler
	passed chan int64
}

func (h *schedHarness) replica() *replica {
	h.t.Helper()
	opts := h.options()
	opts.ConfigWindows = nil
	s, err := New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	r := &replica{t: h.t, s: s, passed: make(chan int64, 1000)}
	s.afterPass = func(n int64) { r.passed <- n }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("replica Run: %v", err)
		}
	})
	r.waitPass(1)
	return r
}

func (r *replica) waitPass(n int64) {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-r.passed:
			if got >= n {
				return
			}
		case <-deadline:
			r.t.Fatalf("the replica did not finish pass %d", n)
		}
	}
}

// sync waits until the replica has done everything due at the clock's time.
func (r *replica) sync() {
	r.t.Helper()
	n := r.s.passes.Load()
	r.s.nudge()
	r.waitPass(n + 1)
}

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}
