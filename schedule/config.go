package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/store"
)

// syncConfig upserts the config windows, keeping the state of those already
// stored (their next start above all), and removes config windows that are
// no longer in the file. It returns every window as stored afterwards. A
// stored window is changed in one step of the store, and only in what the
// file declares, so a Skip, pause or announcement another replica saves
// meanwhile is kept.
func (s *Scheduler) syncConfig(ctx context.Context) ([]store.Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	stored, err := s.store.ListWindows(ctx)
	if err != nil {
		return nil, fmt.Errorf("scheduler: list windows: %w", err)
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
		p, err := s.parsed(cw)
		if err != nil {
			return nil, fmt.Errorf("scheduler: window %s: %w", cw.ID, err)
		}
		if ok && configured(old, cw, p, now) == old {
			continue
		}
		w, err := s.syncConfigWindow(ctx, cw, p, now, ok)
		if errors.Is(err, errNotFromConfig) {
			s.log.Error().Str("window", cw.ID).Msg("a window added by command has the id of a config window; keeping the stored one, ignoring the file's")
		} else if err != nil {
			return nil, fmt.Errorf("scheduler: save window %s: %w", cw.ID, err)
		}
		byID[w.ID] = w
	}
	for _, w := range stored {
		if w.FromConfig && !inFile[w.ID] {
			if err := s.store.DeleteWindow(ctx, w.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("scheduler: remove window %s (no longer in the config file): %w", w.ID, err)
			}
			s.log.Info().Str("window", w.ID).Msg("window removed from the config file")
			delete(byID, w.ID)
		}
	}
	ws := make([]store.Window, 0, len(byID))
	for _, w := range byID {
		ws = append(ws, w)
	}
	return ws, nil
}

// errNotFromConfig: a window with a config window's id turned out to be
// one added by command.
var errNotFromConfig = errors.New("window added by command")

// syncConfigWindow saves the config window cw: a new one whole (stored
// false), a stored one changed in place. It returns the window as stored.
// mu must be held.
func (s *Scheduler) syncConfigWindow(ctx context.Context, cw store.Window, p parsedSpec, now time.Time, stored bool) (store.Window, error) {
	if stored {
		var cur store.Window
		w, err := s.store.UpdateWindow(ctx, cw.ID, func(w *store.Window) error {
			if !w.FromConfig {
				cur = *w
				return errNotFromConfig
			}
			*w = configured(*w, cw, p, now)
			return nil
		})
		switch {
		case errors.Is(err, errNotFromConfig):
			return cur, err
		case !errors.Is(err, store.ErrNotFound):
			return w, err
		}
		// Removed since the list was read: the file brings it back.
	}
	w := cw
	w.Created, w.CreatedBy = now, "config"
	w.NextStart = p.sched.Next(now)
	return w, s.store.PutWindow(ctx, w)
}

// configured is the stored window old with what the config file declares
// (cw) laid over it: the file owns the definition, the store the state
// (created, paused, announced, skipped, next start). A changed schedule
// counts its next start from now.
func configured(old, cw store.Window, p parsedSpec, now time.Time) store.Window {
	w := cw
	w.Created, w.CreatedBy = old.Created, old.CreatedBy
	w.Paused, w.Announced, w.Skip = old.Paused, old.Announced, old.Skip
	w.NextStart = old.NextStart
	if old.Spec != cw.Spec || old.TZ != cw.TZ || w.NextStart.IsZero() {
		w.NextStart = p.sched.Next(now)
	}
	return w
}
