package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WatchDecisions implements store.Store. SQLite has no notifications
// between processes, so while anyone watches, one goroutine per Store
// reads the decisions recorded since it last looked, every pollEvery (and
// at once after a decision of this process). A read of an empty range of
// the primary key in a WAL file costs microseconds.
//
// It returns once the poller knows where the decisions stand, so every
// decision recorded after it returns is delivered.
func (s *Store) WatchDecisions(ctx context.Context) (<-chan string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("watch decisions: store closed")
	}
	ch, err := s.fan.Subscribe(ctx)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("watch decisions: %w", err)
	}
	if s.pollDone != nil {
		s.mu.Unlock()
		return ch, nil
	}
	ready := make(chan error, 1)
	s.pollDone = make(chan struct{})
	go s.poll(ready, s.pollDone)
	s.mu.Unlock()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("watch decisions: %w", err)
	}
	return ch, nil
}

// poll delivers decisions until the last watcher leaves or the store
// closes. ready receives the outcome of reading the starting point.
func (s *Store) poll(ready chan<- error, done chan struct{}) {
	defer close(done)
	exit := func() {
		s.mu.Lock()
		s.pollDone = nil
		s.mu.Unlock()
	}
	var last int64
	err := func() error {
		ctx, cancel := s.op(s.bg)
		defer cancel()
		return s.r.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM decisions").Scan(&last)
	}()
	ready <- err
	if err != nil {
		exit()
		return
	}
	tick := time.NewTicker(s.opts.pollEvery)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-s.bg.Done():
			return
		case <-tick.C:
		case <-s.nudge:
		}
		s.mu.Lock()
		if s.fan.Len() == 0 {
			s.pollDone = nil
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		err := s.deliverSince(&last)
		switch {
		case err != nil && !failing && s.bg.Err() == nil:
			s.log.Warn().Err(err).Msg("cannot read new decisions; retrying (the engine's own poll still finds them)")
			failing = true
		case err == nil && failing:
			s.log.Info().Msg("reading new decisions again")
			failing = false
		}
	}
}

// deliverSince publishes every decision after *last and moves *last on.
// SQLite has one writer at a time, so sequence numbers commit in order
// and none is skipped.
func (s *Store) deliverSince(last *int64) error {
	ctx, cancel := s.op(s.bg)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, "SELECT seq, run_id FROM decisions WHERE seq > ? ORDER BY seq", *last)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var id string
		if err := rows.Scan(&seq, &id); err != nil {
			return err
		}
		*last = seq
		s.fan.Publish(id)
	}
	return rows.Err()
}
