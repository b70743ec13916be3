package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

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

// reportMissed reports the starts that passed before the latest one while
// the bot was down: each is skipped, since a later start followed.
func (s *Scheduler) reportMissed(w store.Window, d dueStarts, now time.Time) {
	for _, t := range d.missed {
		s.publish(events.WindowMissed, events.WindowEvent{Window: w, Start: t, Next: w.NextStart, Late: now.Sub(t), Reason: events.WindowSuperseded}, nil)
	}
	if d.more > 0 {
		s.publish(events.WindowMissed, events.WindowEvent{Window: w, Start: d.latest, Next: w.NextStart, More: d.more, Reason: events.WindowSuperseded}, nil)
	}
}

// skipMissed reports the latest missed start as skipped: beyond grace, or
// its window closed.
func (s *Scheduler) skipMissed(w store.Window, start, now time.Time) {
	ev := events.WindowEvent{Window: w, Start: start, Next: w.NextStart, Late: now.Sub(start), Reason: events.WindowBeyondGrace}
	if ev.Late <= s.grace {
		ev.Reason = events.WindowClosed
	}
	s.publish(events.WindowMissed, ev, nil)
	s.publish(events.WindowSkipped, ev, nil)
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
		id, ok := requesterWindow(r.Requester)
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

// checkOverrun reports a window's run that is still going when the window
// closes. It is reported once: every replica that started or restored the
// run watches it, so they race for the report with a claim, taken before
// posting; the note is cleared too, so a restart does not watch it again.
func (s *Scheduler) checkOverrun(ctx context.Context, id string, tr trackedRun, now time.Time) {
	r, err := s.runState(ctx, tr.RunID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn().Err(err).Str("run", tr.RunID).Msg("scheduler: could not read the window's run; trying again")
		return
	}
	report := err == nil && !r.State.Finished()
	if report {
		first, err := s.claimNotice(ctx, "schedule/overrun/"+tr.RunID, tr.End, now)
		if err != nil {
			s.log.Warn().Err(err).Str("run", tr.RunID).Msg("scheduler: could not claim the overrun report; trying again")
			return
		}
		report = first
	}
	delete(s.tracked, id)
	if perr := s.store.PutNote(ctx, noteWindowRun, id, ""); perr != nil {
		s.log.Warn().Err(perr).Str("window", id).Msg("scheduler: could not clear the window's run note")
	}
	if report {
		s.publish(events.WindowOverrun, events.WindowEvent{Window: tr.Window, Start: tr.Start, End: tr.End}, &r)
	}
}
