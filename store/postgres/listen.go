package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// WatchDecisions implements store.Store. One connection per Store LISTENs
// (started by the first watcher) and fans the notifications out through
// the store's broadcaster. When that connection breaks it is
// re-established with backoff, and the decisions recorded meanwhile are
// delivered from the table; the engine's periodic poll covers whatever
// still slips through.
//
// It returns once the LISTEN is in place, so every decision recorded
// after it returns is delivered, or fails if that takes longer than the
// query timeout.
func (s *Store) WatchDecisions(ctx context.Context) (<-chan string, error) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, errors.New("watch decisions: store closed")
	}
	if !s.listenStarted {
		s.listenStarted = true
		go s.listen()
	}
	s.mu.Unlock()

	wait := time.NewTimer(s.opts.queryTimeout)
	defer wait.Stop()
	select {
	case <-s.listening:
	case <-ctx.Done():
		return nil, fmt.Errorf("watch decisions: %w", ctx.Err())
	case <-s.bg.Done():
		return nil, errors.New("watch decisions: store closed")
	case <-wait.C:
		s.mu.Lock()
		err := s.listenErr
		s.mu.Unlock()
		return nil, fmt.Errorf("watch decisions: no LISTEN connection after %s: %w", s.opts.queryTimeout, err)
	}

	ch, err := s.fan.Subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch decisions: %w", err)
	}
	return ch, nil
}

// listen keeps a LISTEN connection until Close.
func (s *Store) listen() {
	defer close(s.listenDone)
	var (
		lastSeq int64 = -1 // highest decision seen; -1 before the first LISTEN
		down    bool
		backoff = 100 * time.Millisecond
	)
	for {
		err := s.listenOnce(&lastSeq, func() {
			if down {
				s.log.Info().Msg("decision notifications are back")
				down = false
			}
			backoff = 100 * time.Millisecond
		})
		if s.bg.Err() != nil {
			return
		}
		s.mu.Lock()
		s.listenErr = err
		s.mu.Unlock()
		if !down {
			s.log.Warn().Err(err).Msg("lost the connection that listens for decisions; reconnecting (decisions still arrive by polling)")
			down = true
		}
		select {
		case <-s.bg.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listenOnce connects, LISTENs, catches up with decisions recorded since
// *lastSeq and then delivers notifications until the connection fails.
func (s *Store) listenOnce(lastSeq *int64, up func()) error {
	ctx, cancel := context.WithTimeout(s.bg, s.opts.queryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return redactErr(err, s.pool.Config().ConnConfig.Password)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(c)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if *lastSeq < 0 {
		if err := conn.QueryRow(ctx, s.q("SELECT coalesce(max(seq), 0) FROM {schema}.decisions")).Scan(lastSeq); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	} else {
		// Decisions recorded while we were not listening. (A decision
		// whose transaction took a lower seq but committed later than a
		// missed one is left to the engine's poll.)
		rows, err := conn.Query(ctx, s.q("SELECT seq, run_id FROM {schema}.decisions WHERE seq > $1 ORDER BY seq"), *lastSeq)
		if err != nil {
			return fmt.Errorf("listen: catch up: %w", err)
		}
		var missed []string
		var seq int64
		var id string
		_, err = pgx.ForEachRow(rows, []any{&seq, &id}, func() error {
			*lastSeq = max(*lastSeq, seq)
			missed = append(missed, id)
			return nil
		})
		if err != nil {
			return fmt.Errorf("listen: catch up: %w", err)
		}
		for _, id := range missed {
			s.fan.Publish(id)
		}
	}
	cancel()
	s.mu.Lock()
	s.listenErr = nil
	select {
	case <-s.listening:
	default:
		close(s.listening)
	}
	s.mu.Unlock()
	up()

	for {
		// A connection that stays silent is pinged now and then: a
		// server behind a dead network path sends no error.
		wctx, wcancel := context.WithTimeout(s.bg, s.opts.listenCheck)
		n, err := conn.WaitForNotification(wctx)
		wcancel()
		switch {
		case err == nil:
			seq, id, ok := strings.Cut(n.Payload, " ")
			if !ok {
				continue
			}
			if v, err := strconv.ParseInt(seq, 10, 64); err == nil {
				*lastSeq = max(*lastSeq, v)
			}
			s.fan.Publish(id)
		case s.bg.Err() != nil:
			return s.bg.Err()
		case pgconn.Timeout(err):
			pctx, pcancel := context.WithTimeout(s.bg, s.opts.queryTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return fmt.Errorf("listen: ping: %w", err)
			}
		default:
			return fmt.Errorf("listen: %w", err)
		}
	}
}
