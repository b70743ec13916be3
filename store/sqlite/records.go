package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/store"
)

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit (at, user_id, channel, via, action, run_id, outcome)
VALUES (?, ?, ?, ?, ?, ?, ?)`, nanos(e.At), e.User, e.Channel, e.Via, e.Action, e.RunID, e.Outcome)
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	where, args := "1", []any{}
	if !q.Since.IsZero() {
		where += " AND at >= ?"
		args = append(args, q.Since.UnixNano())
	}
	if q.RunID != "" {
		where += " AND run_id = ?"
		args = append(args, q.RunID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, at, user_id, channel, via, action, run_id, outcome FROM audit
WHERE `+where+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.User, &e.Channel, &e.Via, &e.Action, &e.RunID, &e.Outcome); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		e.At = fromNanos(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}

// PruneAudit implements store.Store.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM audit WHERE at < ?", before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return int(n), nil
}

// PutWindow implements store.Store.
func (s *Store) PutWindow(ctx context.Context, w store.Window) error {
	data, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("save window %s: %w", w.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO windows (id, cluster, data) VALUES (?, ?, ?)
ON CONFLICT (id) DO UPDATE SET cluster = excluded.cluster, data = excluded.data`, w.ID, w.Cluster, string(data))
		return err
	})
	if err != nil {
		return fmt.Errorf("save window %s: %w", w.ID, err)
	}
	return nil
}

func scanWindow(row scanner) (store.Window, error) {
	var data string
	var w store.Window
	if err := row.Scan(&data); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return w, store.ErrNotFound
		}
		return w, err
	}
	return w, json.Unmarshal([]byte(data), &w)
}

// GetWindow implements store.Store.
func (s *Store) GetWindow(ctx context.Context, id string) (store.Window, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	w, err := scanWindow(s.r.QueryRowContext(ctx, "SELECT data FROM windows WHERE id = ?", id))
	if err != nil {
		return store.Window{}, fmt.Errorf("window %s: %w", id, err)
	}
	return w, nil
}

// ListWindows implements store.Store.
func (s *Store) ListWindows(ctx context.Context) ([]store.Window, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, "SELECT data FROM windows ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list windows: %w", err)
	}
	defer rows.Close()
	var out []store.Window
	for rows.Next() {
		w, err := scanWindow(rows)
		if err != nil {
			return nil, fmt.Errorf("list windows: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list windows: %w", err)
	}
	return out, nil
}

// DeleteWindow implements store.Store.
func (s *Store) DeleteWindow(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM windows WHERE id = ?", id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete window %s: %w", id, err)
	}
	return nil
}

// AdvanceWindow implements store.Store. The write lock makes it a
// compare-and-set across processes.
func (s *Store) AdvanceWindow(ctx context.Context, id string, from, to time.Time) (bool, error) {
	won := false
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		w, err := scanWindow(tx.QueryRowContext(ctx, "SELECT data FROM windows WHERE id = ?", id))
		if err != nil || !w.NextStart.Equal(from) {
			return err
		}
		w.NextStart = to
		data, err := json.Marshal(w)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE windows SET data = ? WHERE id = ?", string(data), id); err != nil {
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

// UpdateWindow implements store.Store. The transaction takes the write
// lock before it reads, so no other process writes between the read and
// the write.
func (s *Store) UpdateWindow(ctx context.Context, id string, change func(*store.Window) error) (store.Window, error) {
	var saved store.Window
	var changeErr error
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		w, err := scanWindow(tx.QueryRowContext(ctx, "SELECT data FROM windows WHERE id = ?", id))
		if err != nil {
			return err
		}
		data, changed, err := store.ChangeWindow(&w, change)
		if err != nil {
			changeErr = err
			return err
		}
		if changed {
			if _, err := tx.ExecContext(ctx, "UPDATE windows SET cluster = ?, data = ? WHERE id = ?", w.Cluster, string(data), id); err != nil {
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
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notes (scope, key, value) VALUES (?, ?, ?)
ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value`, scope, key, value)
		return err
	})
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
	err := s.r.QueryRowContext(ctx, "SELECT value FROM notes WHERE scope = ? AND key = ?", scope, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("note %s/%s: %w", scope, key, err)
	}
	return v, nil
}

// SeenOnce implements store.Store. Expired keys are dropped by the same
// write, so the table holds only what is still guarded.
func (s *Store) SeenOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := store.CheckSeenOnce(key, ttl); err != nil {
		return false, err
	}
	first := false
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM seen WHERE expires <= ?", now.UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO seen (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", key, now.Add(ttl).UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		first = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("seen once: %w", err)
	}
	return first, nil
}
