package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/window"
)

// errChangedMeanwhile: the window a change was meant for has been
// changed by someone else since it was read; it is read again.
var (
	errChangedMeanwhile = errors.New("window changed meanwhile")
	errAnnouncedAlready = errors.New("start announced already")
)

// window does what is due for one window, as just read from the store, and
// returns when it next needs attention (zero: not while it stays as it
// is). retry: something failed or another replica moved the window first;
// look again shortly.
func (s *Scheduler) window(ctx context.Context, w store.Window, now time.Time) (next time.Time, retry bool) {
	if w.Paused {
		return time.Time{}, false
	}
	p, err := s.parsed(w)
	if err != nil {
		s.log.Error().Err(err).Str("window", w.ID).Msg("scheduler: window has an invalid schedule; ignoring it")
		return time.Time{}, false
	}
	if w.NextStart.IsZero() {
		next := p.sched.Next(now)
		if next.IsZero() {
			return time.Time{}, false
		}
		if won, err := s.store.AdvanceWindow(ctx, w.ID, w.NextStart, next); err != nil || !won {
			return time.Time{}, true
		}
		w.NextStart = next
	}
	if now.Before(w.NextStart) {
		return s.announce(ctx, w, now)
	}
	if w.Approval {
		return s.dueApproval(ctx, w, p, now)
	}
	return s.due(ctx, w, p, now)
}

// announce posts the announcement of the next start once its lead time has
// come. Replicas that all read the start as not yet announced race for it:
// the one whose record of it on the window (one step of the store, on the
// window as it is then) finds it unrecorded posts it. The record is made
// before posting: after a crash in between the announcement is lost
// rather than posted twice. A Skip or pause saved meanwhile is seen there
// and kept.
func (s *Scheduler) announce(ctx context.Context, w store.Window, now time.Time) (time.Time, bool) {
	start := w.NextStart
	if start.IsZero() || w.Announce <= 0 || w.Announced.Equal(start) || w.Skip.Equal(start) {
		return start, false
	}
	at := start.Add(-w.Announce)
	if now.Before(at) {
		return at, false
	}
	saved, err := s.store.UpdateWindow(ctx, w.ID, func(cur *store.Window) error {
		switch {
		case !cur.NextStart.Equal(start) || cur.Skip.Equal(start) || cur.Paused:
			return errChangedMeanwhile
		case cur.Announced.Equal(start):
			return errAnnouncedAlready
		}
		cur.Announced = start
		return nil
	})
	switch {
	case errors.Is(err, errAnnouncedAlready):
		return start, false // another replica announced it
	case errors.Is(err, errChangedMeanwhile), errors.Is(err, store.ErrNotFound):
		return time.Time{}, true // changed or removed meanwhile: read it again
	case err != nil:
		s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not record the announcement; trying again")
		return time.Time{}, true
	}
	s.publish(events.WindowAnnounced, events.WindowEvent{Window: saved, Start: start}, nil)
	return start, false
}

// due handles a window without approval whose NextStart has come.
func (s *Scheduler) due(ctx context.Context, w store.Window, p parsedSpec, now time.Time) (time.Time, bool) {
	d := startsUntil(p.sched, w.NextStart, now)
	// The start is taken in one step of the store, on the window as it is
	// then: a Skip or pause saved by another replica after this pass read
	// the window is seen here, and a Skip after it finds the start passed.
	from := w.NextStart
	saved, err := s.store.UpdateWindow(ctx, w.ID, func(cur *store.Window) error {
		if !cur.NextStart.Equal(from) || cur.Paused {
			return errChangedMeanwhile
		}
		cur.NextStart = d.next
		return nil
	})
	switch {
	case errors.Is(err, errChangedMeanwhile), errors.Is(err, store.ErrNotFound):
		return time.Time{}, true // another replica (or a click) changed it: read it again
	case err != nil:
		s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not advance window; trying again")
		return time.Time{}, true
	}
	w = saved
	s.reportMissed(w, d, now)
	start := d.latest
	late := now.Sub(start)
	switch {
	case w.Skip.Equal(start):
		s.log.Info().Str("window", w.ID).Time("start", start).Msg("window start skipped, as asked")
	case late <= onTimeSlack:
		_ = s.start(ctx, w, events.WindowEvent{Window: w, Start: start}, now)
	case late <= s.grace && now.Before(start.Add(w.Duration)):
		ev := events.WindowEvent{Window: w, Start: start, Late: late}
		ev.Reason = events.WindowLateStart
		s.publish(events.WindowMissed, ev, nil)
		ev.Reason = ""
		_ = s.start(ctx, w, ev, now)
	default:
		s.skipMissed(w, start, now)
	}
	return s.announce(ctx, w, now)
}

// dueApproval handles an approval-required window whose NextStart has come.
// Its NextStart stays at the open window's start until someone presses
// Start (Approve advances it) or the window closes, so the compare-and-set
// on NextStart also decides which click starts the run.
func (s *Scheduler) dueApproval(ctx context.Context, w store.Window, p parsedSpec, now time.Time) (time.Time, bool) {
	d := startsUntil(p.sched, w.NextStart, now)
	start := d.latest
	if !start.Equal(w.NextStart) {
		won, err := s.store.AdvanceWindow(ctx, w.ID, w.NextStart, start)
		if err != nil || !won {
			return time.Time{}, true
		}
		w.NextStart = start
		s.reportMissed(w, d, now)
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
			return time.Time{}, true
		}
		if asked {
			s.publish(events.WindowSkipped, events.WindowEvent{Window: w, Start: start, Reason: events.WindowNotApproved}, nil)
		} else {
			s.skipMissed(w, start, now)
		}
	case asked:
		return end, false
	case late <= max(onTimeSlack, s.grace):
		// Replicas that all read no request race for it, as for the
		// announcement.
		first, err := s.claimNotice(ctx, windowNotice("approval", w, start), end, now)
		if err != nil {
			s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not claim the approval request; trying again")
			return time.Time{}, true
		}
		if !first {
			return end, false // another replica asked
		}
		if late > onTimeSlack {
			s.publish(events.WindowMissed, events.WindowEvent{Window: w, Start: start, Late: late, Reason: events.WindowLateApproval}, nil)
		}
		if err := s.store.PutNote(ctx, noteWindowApproval, w.ID, start.Format(time.RFC3339Nano)); err != nil {
			// Only the report when the window closes unapproved reads it.
			s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not record the approval request")
		}
		s.publish(events.WindowApproval, events.WindowEvent{Window: w, Start: start}, nil)
		return end, false
	default:
		if advance() {
			s.skipMissed(w, start, now)
		}
	}
	if w.NextStart.Equal(start) {
		return time.Time{}, true
	}
	return s.announce(ctx, w, now)
}

// start starts the window's run for the start ev.Start (ev also carries
// who approved it, or how late it is). w must already be advanced past it
// (this replica won the start).
func (s *Scheduler) start(ctx context.Context, w store.Window, ev events.WindowEvent, now time.Time) error {
	run, err := s.startWindowRun(ctx, w, ev.By)
	var busy *procedures.BusyError
	switch {
	case errors.As(err, &busy):
		s.log.Info().Str("window", w.ID).Str("busy_run", busy.Run.ID).Msg("window skipped: cluster busy")
		s.publish(events.WindowSkipped, events.WindowEvent{Window: w, Start: ev.Start, Reason: events.WindowBusy, Err: busy.Error()}, nil)
		return err
	case err != nil:
		s.log.Error().Err(err).Str("window", w.ID).Msg("window run could not start")
		s.publish(events.WindowSkipped, events.WindowEvent{Window: w, Start: ev.Start, Reason: events.WindowStartFailed, Err: err.Error()}, nil)
		return err
	}
	end := ev.Start.Add(w.Duration)
	s.tracked[w.ID] = trackedRun{RunID: run.ID, Start: ev.Start, End: end, Window: w}
	if err := s.store.PutNote(ctx, noteWindowRun, w.ID, fmt.Sprintf("%s %s %s", run.ID, ev.Start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))); err != nil {
		// Only the overrun report after a restart depends on it.
		s.log.Warn().Err(err).Str("window", w.ID).Msg("scheduler: could not record the window's run")
	}
	s.log.Info().Str("window", w.ID).Str("run", run.ID).Dur("late", now.Sub(ev.Start)).Msg("window started its run")
	ev.Window, ev.End = w, end
	s.publish(events.WindowStarted, ev, &run)
	return nil
}

// startWindowRun reads the window's command and starts its run on the
// window's cluster (unless the command names another), as the scheduler,
// on behalf of whoever approved the start (approver) or else scheduled
// the window: under four-eyes someone else must approve the run.
func (s *Scheduler) startWindowRun(ctx context.Context, w store.Window, approver string) (store.Run, error) {
	req, err := s.parse(w.Command)
	if err != nil {
		return store.Run{}, fmt.Errorf("command %q: %w", w.Command, err)
	}
	if req.Cluster == "" {
		req.Cluster = w.Cluster
	}
	req.Requester, req.Via = procedures.ViaScheduler+":"+w.ID, procedures.ViaScheduler
	req.OnBehalfOf = approver
	if req.OnBehalfOf == "" && !w.FromConfig {
		req.OnBehalfOf = w.CreatedBy
	}
	ctx, cancel := context.WithTimeout(ctx, startRunTimeout)
	defer cancel()
	return s.startF(ctx, req)
}

// parsed returns a window's schedule, parsing each expression once (a
// start-up with thousands of windows would otherwise load the same zone
// files over and over). mu must be held.
func (s *Scheduler) parsed(w store.Window) (parsedSpec, error) {
	key := specKey(w)
	if p, ok := s.scheds[key]; ok {
		return p, nil
	}
	sched, loc, err := window.ParseSpec(w.Spec, w.TZ)
	if err != nil {
		return parsedSpec{}, err
	}
	p := parsedSpec{sched: sched, loc: loc}
	s.scheds[key] = p
	return p, nil
}

// specKey names a window's schedule in the parsed cache.
func specKey(w store.Window) string { return w.Spec + "\x00" + w.TZ }

// requesterWindow is the window id of a run the scheduler started.
func requesterWindow(requester string) (string, bool) {
	return strings.CutPrefix(requester, procedures.ViaScheduler+":")
}
