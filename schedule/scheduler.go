// Package schedule runs maintenance windows: it announces each one at its
// lead time, starts its run at its start time (or asks for an authorized
// Start when approval is required), reports a run still going when the
// window closes, and reports the starts it missed while the bot was down.
//
// The store is the truth. A window's NextStart says when it opens next;
// the scheduler moves it on only if it still holds the start it read (one
// step of the store: Store.UpdateWindow or AdvanceWindow), so of several
// replicas (or a bot restarted mid-pass) exactly one starts a given
// window, and a Skip or pause saved meanwhile is seen. In memory the scheduler keeps an index of when each window
// next needs attention, kept current by its own changes and rebuilt from
// the store periodically, so changes made by another replica are seen.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

const (
	defaultWindowDuration = time.Hour
	defaultMissedGrace    = 15 * time.Minute
	// defaultReload: how often the index is rebuilt from the store, so
	// windows added or changed by another replica are seen.
	defaultReload = 30 * time.Second
	// retryDelay: a window whose handling failed (store trouble, or a
	// compare-and-set lost to another replica) is looked at again then.
	retryDelay = 5 * time.Second
	// onTimeSlack: a start handled this late is still "on time" (a busy
	// store or a GC pause); later than that it counts as missed.
	onTimeSlack = time.Minute
	// maxMissedReports bounds the missed starts reported one by one (a
	// minutely window after a week down would otherwise post thousands).
	maxMissedReports = 10
	// maxMissedWalk bounds the walk over missed starts.
	maxMissedWalk   = 100_000
	startRunTimeout = 30 * time.Second

	// Notes the scheduler keeps (scope; the key is the window id).
	noteWindowRun      = "scheduler-run"      // "<run id> <start> <end>" of the window's run
	noteWindowApproval = "scheduler-approval" // start whose approval request was posted
)

// ParseFunc reads a window's command ("maintain backup") into the request
// it starts. Its error is one line naming what is wrong.
type ParseFunc func(command string) (procedures.Request, error)

// Publisher takes the scheduler's window events: *events.Bus, which
// hands them to the fronts.
type Publisher interface{ Publish(events.Event) }

// Options configure a Scheduler.
type Options struct {
	Store store.Store
	Clock ports.Clock // default: the wall clock
	Log   zerolog.Logger
	// Events receives window events (Event.Window set, Message their
	// plain-text form); usually the bus the engine publishes to.
	Events Publisher
	// Parse reads a window's command: Add and the config windows are
	// checked with it, and a window's run starts the request it returns.
	Parse ParseFunc
	// Start starts a run; usually Engine.Start. A busy cluster gives a
	// *procedures.BusyError.
	Start func(ctx context.Context, req procedures.Request) (store.Run, error)
	// RunState reads a run, to see whether it outlasts its window; default
	// Store.GetRun.
	RunState func(ctx context.Context, runID string) (store.Run, error)
	// MissedGrace: a start missed while the bot was down still happens if
	// the bot is back within this time (and the window is still open);
	// default 15m.
	MissedGrace time.Duration
	// ConfigWindows are the windows declared in the config file. They are
	// upserted at start (keeping their NextStart, so a restart neither loses
	// nor doubles them) and config windows no longer in the file are removed.
	ConfigWindows []store.Window
}

// Scheduler runs maintenance windows. Its methods are safe for concurrent
// use by the fronts while Run loops.
type Scheduler struct {
	store       store.Store
	clock       ports.Clock
	log         zerolog.Logger
	events      Publisher
	parse       ParseFunc
	startF      func(ctx context.Context, req procedures.Request) (store.Run, error)
	runState    func(ctx context.Context, runID string) (store.Run, error)
	grace       time.Duration
	config      []store.Window
	reloadEvery time.Duration

	wake chan struct{}

	// mu serializes every read-modify-write of windows in this process, so
	// a click never overwrites what a pass just wrote, or the reverse.
	mu      sync.Mutex
	scheds  map[string]parsedSpec // spec+"\x00"+tz → parsed; guarded by mu
	tracked map[string]trackedRun // window id → its run, watched for overrun; guarded by mu
	idx     *index                // guarded by mu
	gen     uint64                // index generation; guarded by mu

	passes    atomic.Int64
	afterPass func(n int64) // tests: pass n finished
}

type parsedSpec struct {
	sched cron.Schedule
	loc   *time.Location
}

// trackedRun is a window's run, checked when the window closes.
type trackedRun struct {
	RunID      string
	Start, End time.Time
	Window     store.Window
}

// New checks the options and the config windows.
func New(opts Options) (*Scheduler, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("scheduler: no store")
	case opts.Start == nil:
		return nil, errors.New("scheduler: no Start")
	case opts.Parse == nil:
		return nil, errors.New("scheduler: no Parse")
	}
	s := &Scheduler{
		store: opts.Store, clock: opts.Clock, log: opts.Log, events: opts.Events,
		parse: opts.Parse, startF: opts.Start, runState: opts.RunState, grace: opts.MissedGrace,
		reloadEvery: defaultReload, wake: make(chan struct{}, 1),
		scheds: map[string]parsedSpec{}, tracked: map[string]trackedRun{}, idx: newIndex(),
	}
	if s.clock == nil {
		s.clock = ports.SystemClock()
	}
	if s.runState == nil {
		s.runState = opts.Store.GetRun
	}
	if s.grace <= 0 {
		s.grace = defaultMissedGrace
	}
	seen := map[string]bool{}
	for _, w := range opts.ConfigWindows {
		if w.ID == "" {
			return nil, fmt.Errorf("scheduler: a window in the config file has no id (%q)", w.Spec)
		}
		if seen[w.ID] {
			return nil, fmt.Errorf("scheduler: window %s is declared twice", w.ID)
		}
		seen[w.ID] = true
		w, err := CheckWindow(w, opts.Parse)
		if err != nil {
			return nil, fmt.Errorf("scheduler: window %s: %w", w.ID, err)
		}
		w.FromConfig = true
		s.config = append(s.config, w)
	}
	return s, nil
}

// Run upserts the config windows, picks up the runs of windows still going,
// loads the index, reports missed starts, then opens windows until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	began := s.beginReload()
	ws, err := s.syncConfig(ctx)
	if err != nil {
		return err
	}
	s.restoreTracked(ctx)
	s.load(ws, began)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { s.reloadLoop(ctx) })
	for {
		next := s.pass(ctx)
		wait := s.reloadEvery
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-s.clock.After(wait):
		}
	}
}

// nudge makes the loop look at the index again now.
func (s *Scheduler) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// reloadLoop rebuilds the index from the store every reloadEvery. It runs
// beside the loop: reading thousands of windows must not delay a start
// that is due meanwhile.
func (s *Scheduler) reloadLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(s.reloadEvery):
		}
		if err := s.reload(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("scheduler: could not reload the windows; trying again")
		}
	}
}

// reload reads every window and sets when each next needs attention. It
// is safe beside the loop and the fronts' calls: the store is read without
// holding mu, and entries changed in this process since the read began
// are newer than what was read, so they are kept.
func (s *Scheduler) reload(ctx context.Context) error {
	began := s.beginReload()
	ws, err := s.store.ListWindows(ctx)
	if err != nil {
		return fmt.Errorf("list windows: %w", err)
	}
	s.load(ws, began)
	return nil
}

// beginReload marks the moment before the store is read: what this
// process changes later is newer than what that read returns.
func (s *Scheduler) beginReload() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	return s.gen
}

// load sets the index from the windows read after beginReload gave began.
func (s *Scheduler) load(ws []store.Window, began uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	seen := make(map[string]bool, len(ws))
	for _, w := range ws {
		seen[w.ID] = true
		if e, ok := s.idx.byID[w.ID]; ok && e.gen > began {
			continue
		}
		s.idx.set(w.ID, s.attention(w, now), began)
	}
	for id, e := range s.idx.byID {
		if !seen[id] && e.gen <= began {
			s.idx.remove(id)
		}
	}
	s.nudge()
}

// touch records a window changed by this process: it is looked at again
// at due (zero: not until it changes). mu must be held.
func (s *Scheduler) touch(id string, due time.Time) {
	s.gen++
	s.idx.set(id, due, s.gen)
}

// attention says when a window as read from the store next needs the
// loop: its announcement, its start, or now when either has come (the
// loop reads it again then and does what is due). Zero: never, while it
// stays as it is (paused, or an unusable schedule). mu must be held.
func (s *Scheduler) attention(w store.Window, now time.Time) time.Time {
	if w.Paused {
		return time.Time{}
	}
	if _, err := s.parsed(w); err != nil {
		// Only a store edited by hand gets here: Add and the config check
		// every expression.
		s.log.Error().Err(err).Str("window", w.ID).Msg("scheduler: window has an invalid schedule; ignoring it")
		return time.Time{}
	}
	start := w.NextStart
	if start.IsZero() || !now.Before(start) {
		return now
	}
	if w.Announce > 0 && !w.Announced.Equal(start) && !w.Skip.Equal(start) {
		return maxTime(start.Add(-w.Announce), now)
	}
	return start
}

// pass does everything due now and returns when something is due next
// (zero: nothing known).
func (s *Scheduler) pass(ctx context.Context) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.passes.Add(1)
	if s.afterPass != nil {
		defer s.afterPass(n)
	}
	now := s.clock.Now()
	for {
		e, ok := s.idx.first()
		if !ok || e.due.After(now) {
			break
		}
		if ctx.Err() != nil {
			return time.Time{}
		}
		s.handle(ctx, e.id, now)
	}
	var next time.Time
	if e, ok := s.idx.first(); ok {
		next = e.due
	}
	for id, tr := range s.tracked {
		if now.Before(tr.End) {
			next = minTime(next, tr.End)
			continue
		}
		s.checkOverrun(ctx, id, tr, now)
	}
	return next
}

// handle reads a due window again (another replica may have changed it),
// does what is due, and queues it for when it next needs attention. mu
// must be held.
func (s *Scheduler) handle(ctx context.Context, id string, now time.Time) {
	w, err := s.store.GetWindow(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.gen++
		s.idx.remove(id)
		return
	case err != nil:
		s.log.Warn().Err(err).Str("window", id).Msg("scheduler: could not read window; trying again")
		s.touch(id, now.Add(retryDelay))
		return
	}
	next, retry := s.window(ctx, w, now)
	if retry || (!next.IsZero() && !next.After(now)) {
		// Never due again within this pass: a window that cannot be
		// settled must not hold up the others.
		next = now.Add(retryDelay)
	}
	s.touch(id, next)
}

// minTime is the earlier of two times, a zero one counting as unknown.
func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
