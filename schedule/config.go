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
// no longer in the file. It returns every window as stored afterwards.
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
				return nil, fmt.Errorf("scheduler: window %s: %w", w.ID, err)
			}
			w.NextStart = p.sched.Next(now)
		}
		if ok && w == old {
			continue
		}
		if err := s.store.PutWindow(ctx, w); err != nil {
			return nil, fmt.Errorf("scheduler: save window %s: %w", w.ID, err)
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
