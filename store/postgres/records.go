package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nocobot/nocobot/store"
)

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, s.q(`INSERT INTO {schema}.audit (at, user_id, channel, via, action, run_id, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7)`), e.At, e.User, e.Channel, e.Via, e.Action, e.RunID, e.Outcome)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var since *time.Time
	if !q.Since.IsZero() {
		since = &q.Since
	}
	var lim *int
	if q.Limit > 0 {
		lim = &q.Limit
	}
	rows, err := s.pool.Query(ctx, s.q(`SELECT id, at, user_id, channel, via, action, run_id, outcome FROM {schema}.audit
WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2 = '' OR run_id = $2)
ORDER BY id DESC LIMIT $3`), since, q.RunID, lim)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditEntry, error) {
		var e store.AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.User, &e.Channel, &e.Via, &e.Action, &e.RunID, &e.Outcome)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}

// PruneAudit implements store.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q("DELETE FROM {schema}.audit WHERE at < $1"), before)
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// PutWindow implements store.Store.
func (s *Store) PutWindow(ctx context.Context, w store.Window) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	data, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("save window %s: %w", w.ID, err)
	}
	_, err = s.pool.Exec(ctx, s.q(`INSERT INTO {schema}.windows (id, cluster, data) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET cluster = EXCLUDED.cluster, data = EXCLUDED.data`), w.ID, w.Cluster, data)
	if err != nil {
		return fmt.Errorf("save window %s: %w", w.ID, err)
	}
	return nil
}

func scanWindow(row pgx.Row) (store.Window, error) {
	var data []byte
	var w store.Window
	if err := row.Scan(&data); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return w, store.ErrNotFound
		}
		return w, err
	}
	return w, json.Unmarshal(data, &w)
}

// GetWindow implements store.Store.
func (s *Store) GetWindow(ctx context.Context, id string) (store.Window, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	w, err := scanWindow(s.pool.QueryRow(ctx, s.q("SELECT data FROM {schema}.windows WHERE id = $1"), id))
	if err != nil {
		return store.Window{}, fmt.Errorf("window %s: %w", id, err)
	}
	return w, nil
}

// ListWindows implements store.Store.
func (s *Store) ListWindows(ctx context.Context) ([]store.Window, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q("SELECT data FROM {schema}.windows ORDER BY id"))
	if err != nil {
		return nil, fmt.Errorf("list windows: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Window, error) { return scanWindow(row) })
	if err != nil {
		return nil, fmt.Errorf("list windows: %w", err)
	}
	return out, nil
}

// DeleteWindow implements store.Store.
func (s *Store) DeleteWindow(ctx context.Context, id string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q("DELETE FROM {schema}.windows WHERE id = $1"), id)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete window %s: %w", id, err)
	}
	return nil
}

// AdvanceWindow implements store.Store. The row lock makes it a
// compare-and-set across replicas; the comparison is done in Go, on the
// exact NextStart the callers read, as in the embedded store.
func (s *Store) AdvanceWindow(ctx context.Context, id string, from, to time.Time) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	won := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w, err := scanWindow(tx.QueryRow(ctx, s.q("SELECT data FROM {schema}.windows WHERE id = $1 FOR UPDATE"), id))
		if err != nil {
			return err
		}
		if !w.NextStart.Equal(from) {
			return nil
		}
		w.NextStart = to
		data, err := json.Marshal(w)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q("UPDATE {schema}.windows SET data = $2 WHERE id = $1"), id, data); err != nil {
			return err
		}
		won = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("advance window %s: %w", id, err)
	}
	return won, nil
}

// UpdateWindow implements store.Store. SELECT … FOR UPDATE holds the
// row until the transaction ends, so no other replica writes the window
// between the read and the write.
func (s *Store) UpdateWindow(ctx context.Context, id string, change func(*store.Window) error) (store.Window, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var saved store.Window
	var changeErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w, err := scanWindow(tx.QueryRow(ctx, s.q("SELECT data FROM {schema}.windows WHERE id = $1 FOR UPDATE"), id))
		if err != nil {
			return err
		}
		data, changed, err := store.ChangeWindow(&w, change)
		if err != nil {
			changeErr = err
			return err
		}
		if changed {
			if _, err := tx.Exec(ctx, s.q("UPDATE {schema}.windows SET cluster = $2, data = $3 WHERE id = $1"), id, w.Cluster, data); err != nil {
				return err
			}
		}
		saved = w
		return nil
	})
	switch {
	case changeErr != nil:
		return store.Window{}, changeErr
	case errors.Is(err, store.ErrNotFound):
		return store.Window{}, fmt.Errorf("window %s: %w", id, err)
	case err != nil:
		return store.Window{}, fmt.Errorf("update window %s: %w", id, err)
	}
	return saved, nil
}

// PutNote implements store.Store.
func (s *Store) PutNote(ctx context.Context, scope, key, value string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, s.q(`INSERT INTO {schema}.notes (scope, key, value) VALUES ($1, $2, $3)
ON CONFLICT (scope, key) DO UPDATE SET value = EXCLUDED.value`), scope, key, value)
	if err != nil {
		return fmt.Errorf("save note %s/%s: %w", scope, key, err)
	}
	return nil
}

// GetNote implements store.Store.
func (s *Store) GetNote(ctx context.Context, scope, key string) (string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var v string
	err := s.pool.QueryRow(ctx, s.q("SELECT value FROM {schema}.notes WHERE scope = $1 AND key = $2"), scope, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("note %s/%s: %w", scope, key, err)
	}
	return v, nil
}

// SeenOnce implements store.Store, on the database's clock. A key met
// again after it expired is taken anew by the upsert; the other expired
// keys are dropped by the same call.
func (s *Store) SeenOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := store.CheckSeenOnce(key, ttl); err != nil {
		return false, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q(`INSERT INTO {schema}.seen (key, expires) VALUES ($1, now() + $2::bigint * interval '1 microsecond')
ON CONFLICT (key) DO UPDATE SET expires = EXCLUDED.expires WHERE {schema}.seen.expires <= now()`), key, ttl.Microseconds())
	if err != nil {
		return false, fmt.Errorf("seen once: %w", err)
	}
	if _, err := s.pool.Exec(ctx, s.q("DELETE FROM {schema}.seen WHERE expires <= now()")); err != nil {
		s.log.Warn().Err(err).Msg("could not drop expired replay-guard keys")
	}
	return tag.RowsAffected() == 1, nil
}
