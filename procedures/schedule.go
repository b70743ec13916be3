package procedures

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/store"
)

// The scheduler opens maintenance windows: it announces each one at its
// lead time, starts its run at its start time (or asks for an authorized
// Start when approval is required), reports a run still going when the
// window closes, and reports the starts it missed while the bot was down.
//
// The store is the truth. A window's NextStart says when it opens next;
// the scheduler moves it on with Store.AdvanceWindow, a compare-and-set, so
// of several replicas (or a bot restarted mid-pass) exactly one starts a
// given window. Everything the scheduler keeps in memory can be rebuilt from
// the store, which is what Run does at start.

const (
	defaultWindowDuration = time.Hour
	defaultMissedGrace    = 15 * time.Minute
	// defaultSchedulerPoll: how often the store is read again even when no
	// window is due, so windows added or changed by another replica are seen.
	defaultSchedulerPoll = 30 * time.Second
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

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	Store store.Store
	Clock Clock // default: the wall clock
	Log   zerolog.Logger
	// Publish reports window events; usually Engine.PublishWindow.
	Publish func(kind EventKind, w store.Window, run *store.Run, msg string)
	// StartRun starts the window's procedure (w.Command) on w.Cluster with
	// Requester "scheduler:<window id>" and Via "scheduler"; a busy cluster
	// gives a *BusyError.
	StartRun func(ctx context.Context, w store.Window) (store.Run, error)
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
	store    store.Store
	clock    Clock
	log      zerolog.Logger
	publishF func(kind EventKind, w store.Window, run *store.Run, msg string)
	startRun func(ctx context.Context, w store.Window) (store.Run, error)
	runState func(ctx context.Context, runID string) (store.Run, error)
	grace    time.Duration
	config   []store.Window
	poll     time.Duration

	wake chan struct{}

	// mu serializes every read-modify-write of windows in this process, so
	// a click never overwrites what a pass just wrote, or the reverse.
	mu      sync.Mutex
	scheds  map[string]parsedSpec // spec+"\x00"+tz → parsed; guarded by mu
	tracked map[string]trackedRun // window id → its run, watched for overrun; guarded by mu

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

// NewScheduler checks the options and the config windows.
func NewScheduler(opts SchedulerOptions) (*Scheduler, error) {
	if opts.Store == nil {
		return nil, errors.New("scheduler: no store")
	}
	if opts.StartRun == nil {
		return nil, errors.New("scheduler: no StartRun")
	}
	s := &Scheduler{
		store: opts.Store, clock: opts.Clock, log: opts.Log, publishF: opts.Publish,
		startRun: opts.StartRun, runState: opts.RunState, grace: opts.MissedGrace,
		poll: defaultSchedulerPoll, wake: make(chan struct{}, 1),
		scheds: map[string]parsedSpec{}, tracked: map[string]trackedRun{},
	}
	if s.clock == nil {
		s.clock = SystemClock()
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
		w, err := normalizeWindow(w)
		if err != nil {
			return nil, fmt.Errorf("scheduler: window %s: %w", w.ID, err)
		}
		w.FromConfig = true
		s.config = append(s.config, w)
	}
	return s, nil
}

// normalizeWindow validates a window's definition and fills defaults.
func normalizeWindow(w store.Window) (store.Window, error) {
	if _, _, err := ParseWindowSpec(w.Spec, w.TZ); err != nil {
		return w, err
	}
	w.Spec = strings.TrimSpace(w.Spec)
	if w.TZ == "" {
		w.TZ = "UTC"
	}
	w.Command = strings.TrimSpace(w.Command)
	if w.Command == "" {
		return w, errors.New("no procedure: a window needs one, e.g. upgrade 1.7.15")
	}
	if w.Duration < 0 || w.Announce < 0 {
		return w, errors.New("duration and announcement lead time cannot be negative")
	}
	if w.Duration == 0 {
		w.Duration = defaultWindowDuration
	}
	return w, nil
}

// Run upserts the config windows, picks up the runs of windows still going,
// reports missed starts, then opens windows until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.syncConfig(ctx); err != nil {
		return err
	}
	s.restoreTracked(ctx)
	for {
		next := s.pass(ctx)
		wait := s.poll
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

// nudge makes the loop look at the store again now.
func (s *Scheduler) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Add validates and saves a new window. It returns the window as saved and
// its next three starts in the window's time zone.
func (s *Scheduler) Add(ctx context.Context, w store.Window) (store.Window, []time.Time, error) {
	w, err := normalizeWindow(w)
	if err != nil {
		return store.Window{}, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.parsed(w)
	if err != nil {
		return store.Window{}, nil, err
	}
	now := s.clock.Now()
	if w.ID == "" {
		if w.ID, err = s.newWindowID(ctx); err != nil {
			return store.Window{}, nil, err
		}
	} else if _, err := s.store.GetWindow(ctx, w.ID); err == nil {
		return store.Window{}, nil, fmt.Errorf("window %s: %w", w.ID, store.ErrExists)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Window{}, nil, err
	}
	if w.Created.IsZero() {
		w.Created = now
	}
	w.NextStart = p.sched.Next(now)
	w.Announced, w.Skip = time.Time{}, time.Time{}
	if err := s.store.PutWindow(ctx, w); err != nil {
		return store.Window{}, nil, fmt.Errorf("save window %s: %w", w.ID, err)
	}
	s.log.Info().Str("window", w.ID).Str("spec", w.Spec).Str("tz", w.TZ).Str("command", w.Command).Time("next", w.NextStart).Msg("window added")
	s.nudge()
	next := make([]time.Time, 0, 3)
	for t := w.NextStart; len(next) < 3 && !t.IsZero(); t = p.sched.Next(t) {
		next = append(next, t.In(p.loc))
	}
	return w, next, nil
}

// idAlphabet leaves out letters and digits that are easily confused when
// typed (0/o, 1/l/i).
const idAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

func (s *Scheduler) newWindowID(ctx context.Context) (string, error) {
	for i := range 20 {
		n := 4
		if i >= 10 {
			n = 6 // crowded: widen rather than fail
		}
		b := make([]byte, n)
		for j := range b {
			k, err := rand.Int(rand.Reader, big.NewInt(int64(len(idAlphabet))))
			if err != nil {
				return "", err
			}
			b[j] = idAlphabet[k.Int64()]
		}
		id := "w-" + string(b)
		_, err := s.store.GetWindow(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return id, nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errors.New("could not find a free window id")
}

// List returns every window, soonest first.
func (s *Scheduler) List(ctx context.Context) ([]store.Window, error) {
	ws, err := s.store.ListWindows(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ws, func(a, b store.Window) int {
		if c := a.NextStart.Compare(b.NextStart); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ws, nil
}

func (s *Scheduler) getWindow(ctx context.Context, id string) (store.Window, error) {
	w, err := s.store.GetWindow(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return w, fmt.Errorf("no maintenance window %q (see schedule list): %w", id, store.ErrNotFound)
	}
	return w, err
}

// Remove deletes a window. Windows from the config file are removed there
// (they would come back at the next start otherwise); pause them meanwhile.
func (s *Scheduler) Remove(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.getWindow(ctx, id)
	if err != nil {
		return err
	}
	if w.FromConfig {
		return fmt.Errorf("window %s is declared in the config file: remove it there (schedule pause %s stops it meanwhile)", id, id)
	}
	if err := s.store.DeleteWindow(ctx, id); err != nil {
		return fmt.Errorf("remove window %s: %w", id, err)
	}
	s.log.Info().Str("window", id).Msg("window removed")
	s.nudge()
	return nil
}

// SetPaused pauses or resumes a window. A paused window is neither
// announced nor started; resuming computes its next start from now, so the
// starts that passed while it was paused do not all fire at once.
func (s *Scheduler) SetPaused(ctx context.Context, id string, paused bool) (store.Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.getWindow(ctx, id)
	if err != nil {
		return w, err
	}
	if w.Paused == paused {
		return w, nil
	}
	w.Paused = paused
	if !paused {
		p, err := s.parsed(w)
		if err != nil {
			return w, err
		}
		w.NextStart = p.sched.Next(s.clock.Now())
	}
	if err := s.store.PutWindow(ctx, w); err != nil {
		return w, fmt.Errorf("save window %s: %w", id, err)
	}
	s.log.Info().Str("window", id).Bool("paused", paused).Time("next", w.NextStart).Msg("window paused or resumed")
	s.nudge()
	return w, nil
}

// Skip skips one start of a window (the Skip button of its announcement).
func (s *Scheduler) Skip(ctx context.Context, id string, start time.Time, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.getWindow(ctx, id)
	if err != nil {
		return err
	}
	p, err := s.parsed(w)
	if err != nil {
		return err
	}
	switch {
	case start.Before(w.NextStart):
		return fmt.Errorf("window %s of %s has already passed (next start: %s)", id, fmtWhen(start, p.loc), fmtWhen(w.NextStart, p.loc))
	case !start.Equal(w.NextStart) && !p.sched.Next(start.Add(-time.Second)).Equal(start):
		return fmt.Errorf("%s is not a start of window %s (next start: %s)", fmtWhen(start, p.loc), id, fmtWhen(w.NextStart, p.loc))
	case w.Skip.Equal(start):
		return nil // a second click on the same button
	}
	w.Skip = start
	if err := s.store.PutWindow(ctx, w); err != nil {
		return fmt.Errorf("save window %s: %w", id, err)
	}
	s.log.Info().Str("window", id).Time("start", start).Str("by", by).Msg("window start skipped")
	s.publish(EventWindowSkipped, w, start, nil, fmt.Sprintf("%s: the start of %s is skipped, as asked by %s.", describeWindow(w), fmtWhen(start, p.loc), mention(by)))
	s.nudge()
	return nil
}

// Approve is the authorized Start click of an approval-required window: it
// starts the run if the window is open and nobody started it yet.
func (s *Scheduler) Approve(ctx context.Context, id string, start time.Time, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.getWindow(ctx, id)
	if err != nil {
		return err
	}
	p, err := s.parsed(w)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	end := start.Add(w.Duration)
	switch {
	case !w.Approval:
		return fmt.Errorf("window %s needs no approval: it starts by itself", id)
	case w.Paused:
		return fmt.Errorf("window %s is paused (schedule resume %s first)", id, id)
	case start.Before(w.NextStart):
		return fmt.Errorf("the window of %s (%s) has already started, been skipped or closed", fmtWhen(start, p.loc), id)
	case now.Before(start) || !start.Equal(w.NextStart):
		return fmt.Errorf("window %s opens at %s: Start is possible from then until %s", id, fmtWhen(start, p.loc), fmtWhen(end, p.loc))
	case !now.Before(end):
		return fmt.Errorf("window %s closed at %s: its run can no longer start", id, fmtWhen(end, p.loc))
	case w.Skip.Equal(start):
		return fmt.Errorf("the window of %s (%s) was skipped", fmtWhen(start, p.loc), id)
	}
	next := p.sched.Next(now)
	won, err := s.store.AdvanceWindow(ctx, id, start, next)
	if err != nil {
		return err
	}
	if !won {
		return fmt.Errorf("window %s was started or skipped by someone else just now", id)
	}
	w.NextStart = next
	s.log.Info().Str("window", id).Time("start", start).Str("by", by).Msg("window approved")
	return s.start(ctx, w, p.loc, start, now, "approved by "+mention(by))
}

// syncConfig upserts the config windows, keeping the state of those already
// stored (their next start above all), and removes config windows that are
// no longer in the file.
func (s *Scheduler) syncConfig(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	stored, err := s.store.ListWindows(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: list windows: %w", err)
	}
	byID := map[string]store.Window{}
	for _, w := range stored {
		byID[w.ID] = w
	}
	inFile := map[string]bool{}
	for _, cw := range s.config {
		inFile[cw.ID] = true
		old, ok := byID[cw.ID]
		if ok && !old.FromConfig {
			s.log.Error().Str("window", cw.ID).Msg("a window added by command has the id of a config window; keeping the stored one, ignoring the file's")
			continue
		}
		w := cw
		if ok {
			w.Created, w.CreatedBy = old.Created, old.CreatedBy
			w.Paused, w.Announced, w.Skip = old.Paused, old.Announced, old.Skip
			w.NextStart = old.NextStart
			if old.Spec != cw.Spec || old.TZ != cw.TZ {
				w.NextStart = time.Time{} // the schedule changed: computed below
			}
		} else {
			w.Created = now
			w.CreatedBy = "config"
		}
		if w.NextStart.IsZero() {
			p, err := s.parsed(w)
			if err != nil {
				return fmt.Errorf("scheduler: window %s: %w", w.ID, err)
			}
			w.NextStart = p.sched.Next(now)
		}
		if ok && w == old {
			continue
		}
		if err := s.store.PutWindow(ctx, w); err != nil {
			return fmt.Errorf("scheduler: save window %s: %w", w.ID, err)
		}
	}
	for _, w := range stored {
		if w.FromConfig && !inFile[w.ID] {
			if err := s.store.DeleteWindow(ctx, w.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("scheduler: remove window %s (no longer in the config file): %w", w.ID, err)
			}
			s.log.Info().Str("window", w.ID).Msg("window removed from the config file")
		}
	}
	return nil
}

// restoreTracked finds the unfinished runs that windows started, so their
// overrun is still reported after a restart.
func (s *Scheduler) restoreTracked(ctx context.Context) {
	runs, err := s.store.UnfinishedRuns(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("scheduler: could not list unfinished runs; overruns of window runs started before this restart will not be reported")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range runs {
		id, ok := strings.CutPrefix(r.Requester, "scheduler:")
		if !ok {
			continue
		}
		note, err := s.store.GetNote(ctx, noteWindowRun, id)
		if err != nil {
			continue
		}
		var runID, st, en string
		if n, _ := fmt.Sscan(note, &runID, &st, &en); n != 3 || runID != r.ID {
			continue
		}
		start, err1 := time.Parse(time.RFC3339Nano, st)
		end, err2 := time.Parse(time.RFC3339Nano, en)
		if err1 != nil || err2 != nil {
			continue
		}
		w, err := s.store.GetWindow(ctx, id)
		if err != nil {
			w = store.Window{ID: id, Cluster: r.Cluster}
		}
		s.tracked[id] = trackedRun{RunID: r.ID, Start: start, End: end, Window: w}
	}
}

// pass does everything due now and returns when something is due next
// (zero: nothing known; the loop polls).
func (s *Scheduler) pass(ctx context.Context) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.passes.Add(1)
	if s.afterPass != nil {
		defer s.afterPass(n)
	}
	now := s.clock.Now()
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	ws, err := s.store.ListWindows(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("scheduler: could not list windows; trying again")
		return time.Time{}
	}
	for _, w := range ws {
		if ctx.Err() != nil {
			return time.Time{}
		}
		consider(s.window(ctx, w, now))
	}
	for id, tr := range s.tracked {
		if now.Before(tr.End) {
			consider(tr.End)
			continue
		}
		s.checkOverrun(ctx, id, tr, now)
	}
	return next
}

// window does what is due for one window and returns when it next needs
// attention.
func (s *Scheduler) window(ctx context.Context, w store.Window, now time.Time) time.Time {
	if w.Paused {
		return time.Time{}
	}
	p, err := s.parsed(w)
	if err != nil {
		// Only a store edited by hand gets here: Add and the config check
		// every expression.
		s.log.Error().Err(err).Str("window", w.ID).Msg("scheduler: window has an invalid schedule; ignoring it")
		return time.Time{}
	}
	if w.NextStart.IsZero() {
		next := p.sched.Next(now)
		if next.IsZero() {
			return time.Time{}
		}
		if won, err := s.store.AdvanceWindow(ctx, w.ID, w.NextStart, next); err != nil || !won {
			return time.Time{}
		}
		w.NextStart = next
	}
	if now.Before(w.NextStart) {
		return s.announce(ctx, w, p.loc, now)
	}
	if w.Approval {
		return s.dueApproval(ctx, w, p, now)
	}
	return s.due(ctx, w, p, now)
}

// announce posts the announcement of the next start once its lead time has
// come. It records the announcement before posting: after a crash in
// between the announcement is lost rather than posted twice.
func (s *Scheduler) announce(ctx context.Context, w store.Window, loc *time.Location, now time.Time) time.Time {
	start := w.NextStart
	if w.Announce <= 0 || w.Announced.Equal(start) || w.Skip.Equal(start) {
		return start
	}
	at := start.Add(-w.Announce)
	if now.Before(at) {
		return at
	}
	w.Announced = start
	if err := s.store.PutWindow(ctx, w); err != nil {
		s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not record the announcement; trying again")
		return time.Time{}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s opens %s (in %s) for %s.", describeWindow(w), fmtWhen(start, loc), fmtDuration(start.Sub(now)), fmtDuration(w.Duration))
	if w.Approval {
		b.WriteString(" It starts when someone allowed to run procedures presses Start.")
	}
	s.publish(EventWindowAnnounced, w, start, nil, b.String())
	return start
}

// dueStarts are the starts from a window's NextStart up to now.
type dueStarts struct {
	missed []time.Time // earlier ones, reported one by one
	more   int         // earlier ones beyond maxMissedReports
	latest time.Time   // the last start not after now
	next   time.Time   // the first start after now
}

func startsUntil(sched cron.Schedule, first, now time.Time) dueStarts {
	d := dueStarts{latest: first}
	for range maxMissedWalk {
		n := sched.Next(d.latest)
		if n.IsZero() || n.After(now) {
			d.next = n
			return d
		}
		if len(d.missed) < maxMissedReports {
			d.missed = append(d.missed, d.latest)
		} else {
			d.more++
		}
		d.latest = n
	}
	// Down for longer than the walk covers: the latest start seen is
	// ancient and will be judged beyond grace.
	d.next = sched.Next(now)
	return d
}

// due handles a window without approval whose NextStart has come.
func (s *Scheduler) due(ctx context.Context, w store.Window, p parsedSpec, now time.Time) time.Time {
	d := startsUntil(p.sched, w.NextStart, now)
	won, err := s.store.AdvanceWindow(ctx, w.ID, w.NextStart, d.next)
	if err != nil {
		s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not advance window; trying again")
		return time.Time{}
	}
	if !won {
		return time.Time{} // another replica (or a click) moved it: read it again
	}
	w.NextStart = d.next
	s.reportMissed(w, p.loc, d, now)
	start := d.latest
	late := now.Sub(start)
	switch {
	case w.Skip.Equal(start):
		s.log.Info().Str("window", w.ID).Time("start", start).Msg("window start skipped, as asked")
	case late <= onTimeSlack:
		_ = s.start(ctx, w, p.loc, start, now, "")
	case late <= s.grace && now.Before(start.Add(w.Duration)):
		s.publish(EventWindowMissed, w, start, nil, fmt.Sprintf("%s missed its start at %s while the bot was down: starting now, %s late (grace %s).",
			describeWindow(w), fmtWhen(start, p.loc), fmtDuration(late), fmtDuration(s.grace)))
		_ = s.start(ctx, w, p.loc, start, now, fmt.Sprintf("%s late", fmtDuration(late)))
	default:
		s.skipMissed(w, p.loc, start, now)
	}
	return s.announce(ctx, w, p.loc, now)
}

// dueApproval handles an approval-required window whose NextStart has come.
// Its NextStart stays at the open window's start until someone presses
// Start (Approve advances it) or the window closes, so the compare-and-set
// on NextStart also decides which click starts the run.
func (s *Scheduler) dueApproval(ctx context.Context, w store.Window, p parsedSpec, now time.Time) time.Time {
	d := startsUntil(p.sched, w.NextStart, now)
	start := d.latest
	if !start.Equal(w.NextStart) {
		won, err := s.store.AdvanceWindow(ctx, w.ID, w.NextStart, start)
		if err != nil || !won {
			return time.Time{}
		}
		w.NextStart = start
		s.reportMissed(w, p.loc, d, now)
	}
	end := start.Add(w.Duration)
	late := now.Sub(start)
	asked := false
	if note, err := s.store.GetNote(ctx, noteWindowApproval, w.ID); err == nil {
		t, err := time.Parse(time.RFC3339Nano, note)
		asked = err == nil && t.Equal(start)
	}
	advance := func() bool {
		won, err := s.store.AdvanceWindow(ctx, w.ID, start, d.next)
		if err != nil {
			s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not advance window; trying again")
		}
		if won {
			w.NextStart = d.next
		}
		return won
	}
	switch {
	case w.Skip.Equal(start):
		if advance() {
			s.log.Info().Str("window", w.ID).Time("start", start).Msg("window start skipped, as asked")
		}
	case !now.Before(end):
		if !advance() {
			return time.Time{}
		}
		if asked {
			s.publish(EventWindowSkipped, w, start, nil, fmt.Sprintf("%s closed at %s: nobody pressed Start, so %s did not run.",
				describeWindow(w), fmtWhen(end, p.loc), w.Command))
		} else {
			s.skipMissed(w, p.loc, start, now)
		}
	case asked:
		return end
	case late <= max(onTimeSlack, s.grace):
		if late > onTimeSlack {
			s.publish(EventWindowMissed, w, start, nil, fmt.Sprintf("%s missed its start at %s while the bot was down: it is still open, asking for Start now (%s late, grace %s).",
				describeWindow(w), fmtWhen(start, p.loc), fmtDuration(late), fmtDuration(s.grace)))
		}
		if err := s.store.PutNote(ctx, noteWindowApproval, w.ID, start.Format(time.RFC3339Nano)); err != nil {
			s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not record the approval request; trying again")
			return time.Time{}
		}
		s.publish(EventWindowApproval, w, start, nil, fmt.Sprintf("%s is open until %s: %s waits for someone allowed to run procedures to press Start.",
			describeWindow(w), fmtWhen(end, p.loc), w.Command))
		return end
	default:
		if advance() {
			s.skipMissed(w, p.loc, start, now)
		}
	}
	if w.NextStart.Equal(start) {
		return time.Time{}
	}
	return s.announce(ctx, w, p.loc, now)
}

// reportMissed reports the starts that passed before the latest one while
// the bot was down: each is skipped, since a later start followed.
func (s *Scheduler) reportMissed(w store.Window, loc *time.Location, d dueStarts, now time.Time) {
	for _, t := range d.missed {
		s.publish(EventWindowMissed, w, t, nil, fmt.Sprintf("%s missed its start at %s while the bot was down: skipped (%s late, grace %s).",
			describeWindow(w), fmtWhen(t, loc), fmtDuration(now.Sub(t)), fmtDuration(s.grace)))
	}
	if d.more > 0 {
		s.publish(EventWindowMissed, w, d.latest, nil, fmt.Sprintf("%s missed %d more starts while the bot was down: all skipped.", describeWindow(w), d.more))
	}
}

// skipMissed reports the latest missed start as skipped: beyond grace, or
// its window closed.
func (s *Scheduler) skipMissed(w store.Window, loc *time.Location, start, now time.Time) {
	late := now.Sub(start)
	why := fmt.Sprintf("%s late, beyond the %s grace", fmtDuration(late), fmtDuration(s.grace))
	if late <= s.grace {
		why = fmt.Sprintf("its window closed at %s", fmtWhen(start.Add(w.Duration), loc))
	}
	s.publish(EventWindowMissed, w, start, nil, fmt.Sprintf("%s missed its start at %s while the bot was down: skipped (%s).", describeWindow(w), fmtWhen(start, loc), why))
	s.publish(EventWindowSkipped, w, start, nil, fmt.Sprintf("%s did not run at %s: the bot was down (%s). Next start: %s.", describeWindow(w), fmtWhen(start, loc), why, fmtWhen(w.NextStart, loc)))
}

// start starts the window's run for the start at start. w must already be
// advanced past it (this replica won the start).
func (s *Scheduler) start(ctx context.Context, w store.Window, loc *time.Location, start, now time.Time, note string) error {
	sctx, cancel := context.WithTimeout(ctx, startRunTimeout)
	run, err := s.startRun(sctx, w)
	cancel()
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		s.log.Info().Str("window", w.ID).Str("busy_run", busy.Run.ID).Msg("window skipped: cluster busy")
		s.publish(EventWindowSkipped, w, start, nil, fmt.Sprintf("%s (%s) is skipped: %s.", describeWindow(w), fmtWhen(start, loc), busy.Error()))
		return err
	case err != nil:
		s.log.Error().Err(err).Str("window", w.ID).Msg("window run could not start")
		s.publish(EventWindowSkipped, w, start, nil, fmt.Sprintf("%s (%s) is skipped: the run could not start: %v", describeWindow(w), fmtWhen(start, loc), err))
		return err
	}
	end := start.Add(w.Duration)
	tr := trackedRun{RunID: run.ID, Start: start, End: end, Window: w}
	s.tracked[w.ID] = tr
	if err := s.store.PutNote(ctx, noteWindowRun, w.ID, fmt.Sprintf("%s %s %s", run.ID, start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))); err != nil {
		// Only the overrun report after a restart depends on it.
		s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not record the window's run")
	}
	msg := fmt.Sprintf("%s opened at %s: run %s started (%s); the window closes at %s.", describeWindow(w), fmtWhen(start, loc), run.ID, w.Command, fmtWhen(end, loc))
	if note != "" {
		msg = strings.TrimSuffix(msg, ".") + " (" + note + ")."
	}
	s.log.Info().Str("window", w.ID).Str("run", run.ID).Dur("late", now.Sub(start)).Msg("window started its run")
	s.publish(EventWindowStarted, w, start, &run, msg)
	return nil
}

// checkOverrun reports a window's run that is still going when the window
// closes. It is reported once; the note is cleared first so a restart
// does not report it again.
func (s *Scheduler) checkOverrun(ctx context.Context, id string, tr trackedRun, now time.Time) {
	r, err := s.runState(ctx, tr.RunID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn().Err(err).Str("run", tr.RunID).Msg("scheduler: could not read the window's run; trying again")
		return
	}
	delete(s.tracked, id)
	if perr := s.store.PutNote(ctx, noteWindowRun, id, ""); perr != nil {
		s.log.Warn().Err(perr).Str("window", id).Msg("scheduler: could not clear the window's run note")
	}
	if err != nil || r.State.Finished() {
		return
	}
	began := r.Created
	if began.IsZero() {
		began = tr.Start
	}
	w := tr.Window
	loc := time.UTC
	if p, err := s.parsed(w); err == nil {
		loc = p.loc
	}
	s.publish(EventWindowOverrun, w, tr.Start, &r, fmt.Sprintf("%s closed at %s but run %s is still %s after %s (window of %s).",
		describeWindow(w), fmtWhen(tr.End, loc), r.ID, r.State, fmtDuration(now.Sub(began)), fmtDuration(tr.End.Sub(tr.Start))))
}

// parsed returns a window's schedule, parsing each expression once (a
// start-up with thousands of windows would otherwise load the same zone
// files over and over).
func (s *Scheduler) parsed(w store.Window) (parsedSpec, error) {
	key := w.Spec + "\x00" + w.TZ
	if p, ok := s.scheds[key]; ok {
		return p, nil
	}
	sched, loc, err := ParseWindowSpec(w.Spec, w.TZ)
	if err != nil {
		return parsedSpec{}, err
	}
	p := parsedSpec{sched: sched, loc: loc}
	s.scheds[key] = p
	return p, nil
}

// publish reports an event about the start at: the window snapshot's
// NextStart is set to it, so a front renders (and its buttons carry) the
// start the event is about, not the one after it.
func (s *Scheduler) publish(kind EventKind, w store.Window, at time.Time, run *store.Run, msg string) {
	w.NextStart = at
	s.log.Debug().Str("event", string(kind)).Str("window", w.ID).Time("start", at).Msg(msg)
	if s.publishF != nil {
		s.publishF(kind, w, run, msg)
	}
}

// mention turns a Slack user id into a mention; other requesters
// ("terminal:alice") stay as they are.
func mention(by string) string {
	if len(by) > 1 && (by[0] == 'U' || by[0] == 'W') && strings.IndexFunc(by, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) < 0 {
		return "<@" + by + ">"
	}
	return by
}

func describeWindow(w store.Window) string {
	if w.Cluster == "" {
		return fmt.Sprintf("Maintenance window %s (%s)", w.ID, w.Command)
	}
	return fmt.Sprintf("Maintenance window %s (%s on %s)", w.ID, w.Command, w.Cluster)
}

func fmtWhen(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("Mon 2 Jan 15:04 MST")
}

// fmtDuration writes 2h, 2h05m, 5m, 45s: what a person reads in a channel.
func fmtDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%02dm", h, m)
}
