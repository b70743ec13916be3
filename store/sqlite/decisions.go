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

// Decide implements store.Store.
func (s *Store) Decide(ctx context.Context, d store.Decision) (store.Decision, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return store.Decision{}, fmt.Errorf("record decision on %s: %w", d.RunID, err)
	}
	var existing store.Decision
	err = s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		var old string
		err := tx.QueryRowContext(ctx, "SELECT data FROM decisions WHERE run_id = ? AND checkpoint = ?", d.RunID, d.Checkpoint).Scan(&old)
		if err == nil {
			if err := json.Unmarshal([]byte(old), &existing); err != nil {
				return err
			}
			return store.ErrAlreadyDecided
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO decisions (run_id, checkpoint, data) VALUES (?, ?, ?)", d.RunID, d.Checkpoint, string(data))
		return err
	})
	if errors.Is(err, store.ErrAlreadyDecided) {
		return existing, fmt.Errorf("decision on %s checkpoint %q: %w", d.RunID, d.Checkpoint, err)
	}
	if err != nil {
		return store.Decision{}, fmt.Errorf("record decision on %s: %w", d.RunID, err)
	}
	// This process's watchers need not wait for the next poll.
	select {
	case s.nudge <- struct{}{}:
	default:
	}
	return d, nil
}

// Decisions implements store.Store.
func (s *Store) Decisions(ctx context.Context, runID string) ([]store.Decision, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, "SELECT data FROM decisions WHERE run_id = ? ORDER BY seq", runID)
	if err != nil {
		return nil, fmt.Errorf("decisions of %s: %w", runID, err)
	}
	defer rows.Close()
	var out []store.Decision
	for rows.Next() {
		var data string
		var d store.Decision
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("decisions of %s: %w", runID, err)
		}
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return nil, fmt.Errorf("decisions of %s: %w", runID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("decisions of %s: %w", runID, err)
	}
	return out, nil
}
