// Package window reads a maintenance window's timing: a cron expression
// in a time zone, as a person types it, into the start times it means.
// It is a leaf: the configuration checks windows with it, the scheduler
// runs them.
package window

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

// maxSpecLen bounds what the cron parser is given: a window's expression is
// typed by a person, and the limit keeps hostile input cheap to refuse.
const maxSpecLen = 200

// minEvery is the shortest "@every" accepted: five-field expressions cannot
// fire more often than once a minute, and a descriptor should not either.
const minEvery = time.Minute

// windowParser accepts the standard five fields and descriptors (@weekly,
// @every 2h). Time zones come from the window, never from the expression.
var windowParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec parses a window's cron expression in its time zone (""
// means UTC). The error says why an input is refused, with the parser's
// own reason, so it can be shown to the person who typed it.
//
// The returned schedule computes start times in the window's zone and
// handles daylight saving the way an operator expects (robfig/cron alone
// would skip or double these):
//   - a wall-clock time that does not exist on the spring-forward day
//     (02:30 in Europe/Berlin) starts at the instant of the change (03:00
//     summer time) instead of being dropped for that day;
//   - a wall-clock time that occurs twice on the fall-back day starts once,
//     at its first occurrence (summer time); the repeated hour is not
//     scheduled again.
func ParseSpec(spec, tz string) (cron.Schedule, *time.Location, error) {
	loc, err := Location(tz)
	if err != nil {
		return nil, nil, err
	}
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, nil, errors.New("empty cron expression: expected five fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * 6\", or a descriptor such as @weekly")
	case len(spec) > maxSpecLen:
		return nil, nil, fmt.Errorf("cron expression too long (%d characters, at most %d)", len(spec), maxSpecLen)
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		// Also avoids a panic in robfig/cron v3.0.1 on "TZ=x" without a space.
		return nil, nil, fmt.Errorf("invalid cron expression %q: give the time zone with --tz (or tz: in the file), not inside the expression", spec)
	}
	sched, err := parseCron(spec)
	if err != nil {
		// The parser's reason quotes the input raw; keep the message on one
		// printable line for chat and logs.
		return nil, nil, fmt.Errorf("invalid cron expression %q: %s", spec, printable(err.Error()))
	}
	switch s := sched.(type) {
	case *cron.SpecSchedule:
		s.Location = loc
		zs := &zonedSchedule{spec: s, loc: loc}
		if zs.Next(time.Now()).IsZero() {
			return nil, nil, fmt.Errorf("invalid cron expression %q: it never matches a date (such as 30 February)", spec)
		}
		return zs, loc, nil
	case cron.ConstantDelaySchedule:
		if s.Delay < minEvery {
			return nil, nil, fmt.Errorf("invalid cron expression %q: windows must be at least 1m apart", spec)
		}
		return s, loc, nil
	default:
		return nil, nil, fmt.Errorf("invalid cron expression %q: unsupported schedule type %T", spec, sched)
	}
}

// parseCron calls the parser, turning a panic inside it into an error: the
// expression is user input, and a bug in a dependency must not take the
// bot down.
func parseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()
	return windowParser.Parse(spec)
}

// printable replaces control characters (a newline pasted into Slack) so
// an error stays one readable line.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '�'
		}
		return r
	}, s)
}

func Location(tz string) (*time.Location, error) {
	switch tz {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		// The server's zone differs between replicas and hosts; a window
		// must say which zone its times are in.
		return nil, errors.New(`time zone "Local" is ambiguous: name a zone such as Europe/Berlin or UTC`)
	}
	if len(tz) > 64 {
		return nil, fmt.Errorf("time zone too long (%d characters)", len(tz))
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("%q is not a time zone (expected e.g. Europe/Berlin)", tz)
	}
	return loc, nil
}

// zonedSchedule is a five-field schedule in a zone with the daylight-saving
// rules described at ParseSpec.
type zonedSchedule struct {
	spec *cron.SpecSchedule
	loc  *time.Location
}

// maxZoneSteps bounds the walk over zone transitions between two starts: a
// schedule's next start lies within five years (robfig's own limit), and
// zones change at most a few times a year.
const maxZoneSteps = 64

// Next returns the first start strictly after t, or the zero time.
func (z *zonedSchedule) Next(t time.Time) time.Time {
	t = t.In(z.loc)
	for range maxZoneSteps {
		n := z.spec.Next(t)
		if n.IsZero() {
			return n
		}
		if g, ok := z.gapStart(t, n); ok {
			return g
		}
		if end, ok := z.repeated(n); ok {
			// The first pass of these wall-clock times already counted.
			t = end.Add(-time.Second)
			continue
		}
		return n
	}
	return time.Time{}
}

// gapStart finds a spring-forward change in (t, n) whose skipped wall-clock
// times the schedule matches, and returns the instant of that change.
func (z *zonedSchedule) gapStart(t, n time.Time) (time.Time, bool) {
	cur := t
	for range maxZoneSteps {
		_, end := cur.ZoneBounds()
		if end.IsZero() || !end.Before(n) {
			return time.Time{}, false
		}
		_, before := end.Add(-time.Nanosecond).Zone()
		_, after := end.Zone()
		if after > before {
			gap := time.Duration(after-before) * time.Second
			// In the old offset the skipped wall-clock times are the
			// instants [end, end+gap): ask the same fields there.
			old := *z.spec
			old.Location = time.FixedZone("", before)
			if m := old.Next(end.Add(-time.Second)); !m.IsZero() && m.Before(end.Add(gap)) {
				return end, true
			}
		}
		cur = end
	}
	return time.Time{}, false
}

// repeated reports whether n lies in the second pass of a fall-back hour,
// i.e. its wall-clock time already happened in the earlier offset, and
// when that second pass ends.
func (z *zonedSchedule) repeated(n time.Time) (time.Time, bool) {
	start, _ := n.ZoneBounds()
	if start.IsZero() {
		return time.Time{}, false
	}
	_, prev := start.Add(-time.Nanosecond).Zone()
	_, now := n.Zone()
	end := start.Add(time.Duration(prev-now) * time.Second)
	return end, n.Before(end)
}
