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

const runCols = "data, owner, lease_until"

// leaseLive reports whether someone other than owner holds a lease that
// has not lapsed at now.
func leaseLive(holder string, until sql.NullInt64, owner string, now time.Time) bool {
	return holder != "" && holder != owner && until.Valid && now.UnixNano() < until.Int64
}

// encodeRun stores the run without owner and lease, which have columns.
func encodeRun(r store.Run) (string, error) {
	r.Owner, r.LeaseUntil = "", time.Time{}
	data, err := json.Marshal(r)
	return string(data), err
}

func lease(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(row scanner) (store.Run, error) {
	var (
		data  string
		owner string
		until sql.NullInt64
	)
	if err := row.Scan(&data, &owner, &until); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return store.Run{}, store.ErrNotFound
		}
		return store.Run{}, err
	}
	var r store.Run
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return store.Run{}, fmt.Errorf("decode run: %w", err)
	}
	r.Owner = owner
	if until.Valid {
		r.LeaseUntil = time.Unix(0, until.Int64)
	}
	return r, nil
}

func collectRuns(rows *sql.Rows, err error) ([]store.Run, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// activeRun reads the cluster's unfinished run inside tx.
func activeRun(ctx context.Context, tx *sql.Tx, cluster string) (store.Run, error) {
	return scanRun(tx.QueryRowContext(ctx, "SELECT "+runCols+" FROM runs WHERE cluster = ? AND active", cluster))
}

// CreateRun implements store.Store.
func (s *Store) CreateRun(ctx context.Context, r store.Run) (store.Run, error) {
	data, err := encodeRun(r)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run %s: %w", r.ID, err)
	}
	var busy store.Run
	err = s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		if !r.State.Finished() {
			b, err := activeRun(ctx, tx, r.Cluster)
			if err == nil {
				busy = b
				return store.ErrClusterBusy
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?)", r.ID).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return store.ErrExists
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO runs (id, cluster, procedure, state, active, created, updated, owner, lease_until, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Cluster, r.Procedure, string(r.State), !r.State.Finished(), nanos(r.Created), nanos(r.Updated), r.Owner, lease(r.LeaseUntil), data)
		return err
	})
	switch {
	case errors.Is(err, store.ErrClusterBusy):
		return busy, fmt.Errorf("create run %s on %s: %w", r.ID, r.Cluster, err)
	case errors.Is(err, store.ErrExists):
		return store.Run{}, fmt.Errorf("run %s: %w", r.ID, err)
	case err != nil:
		return store.Run{}, fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return r, nil
}

// fence checks inside tx that owner may write run id at now.
func fence(ctx context.Context, tx *sql.Tx, id, owner string, now time.Time) error {
	var (
		holder string
		until  sql.NullInt64
	)
	err := tx.QueryRowContext(ctx, "SELECT owner, lease_until FROM runs WHERE id = ?", id).Scan(&holder, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if leaseLive(holder, until, owner, now) {
		return store.ErrNotOwner
	}
	return nil
}

// UpdateRun implements store.Store.
func (s *Store) UpdateRun(ctx context.Context, r store.Run) error {
	data, err := encodeRun(r)
	if err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		if err := fence(ctx, tx, r.ID, r.Owner, now); err != nil {
			return err
		}
		if !r.State.Finished() {
			// Only a finished run made unfinished again can meet another
			// run holding the cluster.
			if other, err := activeRun(ctx, tx, r.Cluster); err == nil && other.ID != r.ID {
				return store.ErrClusterBusy
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE runs SET cluster = ?, procedure = ?, state = ?, active = ?, created = ?, updated = ?,
	owner = ?, lease_until = ?, data = ? WHERE id = ?`,
			r.Cluster, r.Procedure, string(r.State), !r.State.Finished(), nanos(r.Created), nanos(r.Updated), r.Owner, lease(r.LeaseUntil), data, r.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	return nil
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, id string) (store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := scanRun(s.r.QueryRowContext(ctx, "SELECT "+runCols+" FROM runs WHERE id = ?", id))
	if err != nil {
		return store.Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, cluster string, limit int) ([]store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var (
		runs []store.Run
		err  error
	)
	if cluster == "" {
		runs, err = collectRuns(s.r.QueryContext(ctx, "SELECT "+runCols+" FROM runs ORDER BY created DESC, id DESC LIMIT ?", limit))
	} else {
		runs, err = collectRuns(s.r.QueryContext(ctx, "SELECT "+runCols+" FROM runs WHERE cluster = ? ORDER BY created DESC, id DESC LIMIT ?", cluster, limit))
	}
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// ActiveRun implements store.Store.
func (s *Store) ActiveRun(ctx context.Context, cluster string) (store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := scanRun(s.r.QueryRowContext(ctx, "SELECT "+runCols+" FROM runs WHERE cluster = ? AND active", cluster))
	if err != nil {
		return store.Run{}, fmt.Errorf("active run of %s: %w", cluster, err)
	}
	return r, nil
}

// UnfinishedRuns implements store.Store.
func (s *Store) UnfinishedRuns(ctx context.Context) ([]store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	runs, err := collectRuns(s.r.QueryContext(ctx, "SELECT "+runCols+" FROM runs WHERE active ORDER BY created, id"))
	if err != nil {
		return nil, fmt.Errorf("unfinished runs: %w", err)
	}
	return runs, nil
}

// ClaimRun implements store.Store.
func (s *Store) ClaimRun(ctx context.Context, id, owner string, until time.Time) (store.Run, error) {
	var r store.Run
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		if err := fence(ctx, tx, id, owner, now); err != nil {
			return err
		}
		var err error
		r, err = scanRun(tx.QueryRowContext(ctx, "UPDATE runs SET owner = ?, lease_until = ? WHERE id = ? RETURNING "+runCols, owner, lease(until), id))
		return err
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("claim run %s: %w", id, err)
	}
	return r, nil
}

// ReleaseRun implements store.Store. Someone else's claim is left alone.
func (s *Store) ReleaseRun(ctx context.Context, id, owner string) error {
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, "UPDATE runs SET owner = '', lease_until = NULL WHERE id = ? AND owner = ?", id, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?)", id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release run %s: %w", id, err)
	}
	return nil
}
