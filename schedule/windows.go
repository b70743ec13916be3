package schedule

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/window"
)

// CheckWindow validates a window's definition — its schedule and zone, its
// durations and its command, read by parse — and fills defaults. Add, the
// config windows and `config check` all use it.
func CheckWindow(w store.Window, parse ParseFunc) (store.Window, error) {
	if _, _, err := window.ParseSpec(w.Spec, w.TZ); err != nil {
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
	if parse == nil {
		return w, errors.New("no command parser to check the window's command")
	}
	if _, err := parse(w.Command); err != nil {
		return w, fmt.Errorf("command %q: %w", w.Command, err)
	}
	if w.Duration < 0 || w.Announce < 0 {
		return w, errors.New("duration and announcement lead time cannot be negative")
	}
	if w.Duration == 0 {
		w.Duration = defaultWindowDuration
	}
	return w, nil
}

// Add validates and saves a new window. It returns the window as saved and
// its next three starts in the window's time zone.
func (s *Scheduler) Add(ctx context.Context, w store.Window) (store.Window, []time.Time, error) {
	w, err := CheckWindow(w, s.parse)
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
	s.touch(w.ID, s.attention(w, now))
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
	return w, notFound(id, err)
}

// notFound words a missing window for the person who named it.
func notFound(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no maintenance window %q (see schedule list): %w", id, store.ErrNotFound)
	}
	return err
}

// maxUnparsed bounds how often update parses a schedule that changed
// under it; more than once is already another process editing it.
const maxUnparsed = 5

// unparsedError: a change needs a schedule this process has not parsed
// yet. Parsing may read a zone file, which must not happen while the
// store holds the window locked, so update parses it outside and tries
// again.
type unparsedError struct{ w store.Window }

func (e *unparsedError) Error() string {
	return fmt.Sprintf("window %s: schedule %q in %s not parsed yet", e.w.ID, e.w.Spec, e.w.TZ)
}

// cachedSpec is parsed for use inside a change given to update: it only
// looks in what is parsed already. mu must be held.
func (s *Scheduler) cachedSpec(w store.Window) (parsedSpec, error) {
	if p, ok := s.scheds[specKey(w)]; ok {
		return p, nil
	}
	return parsedSpec{}, &unparsedError{w: w}
}

// update changes a stored window in one step of the store (UpdateWindow),
// so a change another replica or process saved meanwhile (a Skip, a
// pause, an announcement) is kept. change runs while the store holds the
// window locked: no I/O in it, and the schedule it needs comes from
// cachedSpec. A missing window is worded as getWindow words it. mu must
// be held.
func (s *Scheduler) update(ctx context.Context, id string, change func(*store.Window) error) (store.Window, error) {
	for range maxUnparsed {
		w, err := s.store.UpdateWindow(ctx, id, change)
		var unparsed *unparsedError
		if !errors.As(err, &unparsed) {
			return w, notFound(id, err)
		}
		if _, err := s.parsed(unparsed.w); err != nil {
			return store.Window{}, err
		}
	}
	return store.Window{}, fmt.Errorf("window %s: its schedule keeps changing; try again", id)
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
	s.gen++
	s.idx.remove(id)
	return nil
}

// SetPaused pauses or resumes a window. A paused window is neither
// announced nor started; resuming computes its next start from now, so the
// starts that passed while it was paused do not all fire at once.
func (s *Scheduler) SetPaused(ctx context.Context, id string, paused bool) (store.Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	changed := false
	w, err := s.update(ctx, id, func(w *store.Window) error {
		changed = false
		if w.Paused == paused {
			return nil
		}
		w.Paused = paused
		if !paused {
			p, err := s.cachedSpec(*w)
			if err != nil {
				return err
			}
			w.NextStart = p.sched.Next(now)
		}
		changed = true
		return nil
	})
	if err != nil || !changed {
		return w, err
	}
	s.log.Info().Str("window", id).Bool("paused", paused).Time("next", w.NextStart).Msg("window paused or resumed")
	s.touch(id, s.attention(w, now))
	s.nudge()
	return w, nil
}

// Skip skips one start of a window (the Skip button of its announcement).
func (s *Scheduler) Skip(ctx context.Context, id string, start time.Time, by string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	again := false
	w, err := s.update(ctx, id, func(w *store.Window) error {
		again = false
		p, err := s.cachedSpec(*w)
		if err != nil {
			return err
		}
		switch {
		case start.Before(w.NextStart):
			return fmt.Errorf("window %s of %s has already passed (next start: %s)", id, fmtWhen(start, p.loc), fmtWhen(w.NextStart, p.loc))
		case !start.Equal(w.NextStart) && !p.sched.Next(start.Add(-time.Second)).Equal(start):
			return fmt.Errorf("%s is not a start of window %s (next start: %s)", fmtWhen(start, p.loc), id, fmtWhen(w.NextStart, p.loc))
		case w.Skip.Equal(start):
			again = true // a second click on the same button
			return nil
		}
		w.Skip = start
		return nil
	})
	if err != nil || again {
		return err
	}
	s.log.Info().Str("window", id).Time("start", start).Str("by", by).Msg("window start skipped")
	s.publish(events.WindowSkipped, events.WindowEvent{Window: w, Start: start, By: by, Reason: events.WindowAsked}, nil)
	s.touch(id, s.attention(w, s.clock.Now()))
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
	s.touch(id, s.attention(w, now))
	s.log.Info().Str("window", id).Time("start", start).Str("by", by).Msg("window approved")
	return s.start(ctx, w, events.WindowEvent{Window: w, Start: start, By: by}, now)
}
