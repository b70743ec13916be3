package schedule

import (
	"fmt"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/window"
)

// publish reports an event about one start of a window. The window
// snapshot's NextStart is set to that start, so a front renders (and its
// buttons carry) the start the event is about, not the one after it.
func (s *Scheduler) publish(kind events.Kind, ev events.WindowEvent, run *store.Run) {
	ev.Window.NextStart = ev.Start
	if ev.End.IsZero() {
		ev.End = ev.Start.Add(ev.Window.Duration)
	}
	if ev.Grace == 0 {
		ev.Grace = s.grace
	}
	full := events.Event{Kind: kind, Step: -1, Window: &ev, At: s.clock.Now()}
	if run != nil {
		full.Run = run.Clone()
	}
	full.Message = Text(full, Format{})
	s.log.Debug().Str("event", string(kind)).Str("window", ev.Window.ID).Time("start", ev.Start).Msg(full.Message)
	if s.events != nil {
		s.events.Publish(full)
	}
}

// Format is how a front writes the people and times of a window event.
// The zero Format writes people as they are identified ("U123",
// "terminal:alice") and times as "Sat 6 Jun 02:00 CEST" in the window's
// zone.
type Format struct {
	Who  func(id string) string
	When func(t time.Time, tz string) string
}

func (f Format) who(id string) string {
	if f.Who != nil {
		return f.Who(id)
	}
	return id
}

func (f Format) when(t time.Time, tz string) string {
	if t.IsZero() {
		return "none"
	}
	if f.When != nil {
		return f.When(t, tz)
	}
	loc, err := window.Location(tz)
	if err != nil {
		loc = time.UTC
	}
	return fmtWhen(t, loc)
}

// Text writes a window event (ev.Window set) as one paragraph for a
// person, with people and times written by f.
func Text(ev events.Event, f Format) string {
	if ev.Window == nil {
		return ev.Message
	}
	we := *ev.Window
	w := we.Window
	d := describeWindow(w)
	when := func(t time.Time) string { return f.when(t, w.TZ) }
	lateGrace := fmt.Sprintf("%s late, grace %s", fmtDuration(we.Late), fmtDuration(we.Grace))
	var why string
	switch we.Reason {
	case events.WindowBeyondGrace:
		why = fmt.Sprintf("%s late, beyond the %s grace", fmtDuration(we.Late), fmtDuration(we.Grace))
	case events.WindowClosed:
		why = fmt.Sprintf("its window closed at %s", when(we.End))
	}
	switch ev.Kind {
	case events.WindowAnnounced:
		msg := fmt.Sprintf("%s opens %s (in %s) for %s.", d, when(we.Start), fmtDuration(we.Start.Sub(ev.At)), fmtDuration(w.Duration))
		if w.Approval {
			msg += " It starts when someone allowed to run procedures presses Start."
		}
		return msg
	case events.WindowApproval:
		return fmt.Sprintf("%s is open until %s: %s waits for someone allowed to run procedures to press Start.", d, when(we.End), w.Command)
	case events.WindowStarted:
		msg := fmt.Sprintf("%s opened at %s: run %s started (%s); the window closes at %s", d, when(we.Start), ev.Run.ID, w.Command, when(we.End))
		switch {
		case we.By != "":
			msg += " (approved by " + f.who(we.By) + ")"
		case we.Late > 0:
			msg += " (" + fmtDuration(we.Late) + " late)"
		}
		return msg + "."
	case events.WindowSkipped:
		switch we.Reason {
		case events.WindowAsked:
			return fmt.Sprintf("%s: the start of %s is skipped, as asked by %s.", d, when(we.Start), f.who(we.By))
		case events.WindowBusy:
			return fmt.Sprintf("%s (%s) is skipped: %s.", d, when(we.Start), we.Err)
		case events.WindowStartFailed:
			return fmt.Sprintf("%s (%s) is skipped: the run could not start: %s", d, when(we.Start), we.Err)
		case events.WindowNotApproved:
			return fmt.Sprintf("%s closed at %s: nobody pressed Start, so %s did not run.", d, when(we.End), w.Command)
		}
		return fmt.Sprintf("%s did not run at %s: the bot was down (%s). Next start: %s.", d, when(we.Start), why, when(we.Next))
	case events.WindowMissed:
		missed := fmt.Sprintf("%s missed its start at %s while the bot was down", d, when(we.Start))
		switch we.Reason {
		case events.WindowLateStart:
			return fmt.Sprintf("%s: starting now, %s late (grace %s).", missed, fmtDuration(we.Late), fmtDuration(we.Grace))
		case events.WindowLateApproval:
			return fmt.Sprintf("%s: it is still open, asking for Start now (%s).", missed, lateGrace)
		case events.WindowSuperseded:
			if we.More > 0 {
				return fmt.Sprintf("%s missed %d more starts while the bot was down: all skipped.", d, we.More)
			}
			return fmt.Sprintf("%s: skipped (%s).", missed, lateGrace)
		}
		return fmt.Sprintf("%s: skipped (%s).", missed, why)
	case events.WindowOverrun:
		began := ev.Run.Created
		if began.IsZero() {
			began = we.Start
		}
		return fmt.Sprintf("%s closed at %s but run %s is still %s after %s (window of %s).",
			d, when(we.End), ev.Run.ID, ev.Run.State, fmtDuration(ev.At.Sub(began)), fmtDuration(we.End.Sub(we.Start)))
	}
	return d + ": " + string(ev.Kind)
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
