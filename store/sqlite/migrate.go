package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
)

// migration is one step of the schema's history.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations is the schema's whole history, applied in order on Open.
// Each one runs in the same transaction as the row that records its
// version, so a crash leaves the schema at a whole version. Append only:
// never edit a migration that has been released, add the next one.
//
// Times are Unix nanoseconds (0: none); the records themselves are JSON,
// with columns for what queries select or sort on.
//
//	1  runs (one active run per cluster), decisions, audit, windows, notes, seen keys
var migrations = []migration{
	{version: 1, name: "runs, decisions, audit, windows, notes, seen keys", sql: `
CREATE TABLE runs (
	id          TEXT PRIMARY KEY,
	cluster     TEXT NOT NULL,
	procedure   TEXT NOT NULL,
	state       TEXT NOT NULL,
	-- active: the run is not finished. The unique index below makes at
	-- most one active run per cluster: that is the cluster lock.
	active      INTEGER NOT NULL,
	created     INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	-- owner and lease_until are kept here, not in data, so a claim
	-- compares them in the same transaction that writes them.
	owner       TEXT NOT NULL DEFAULT '',
	lease_until INTEGER,
	data        TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX runs_one_active_per_cluster ON runs (cluster) WHERE active;
CREATE INDEX runs_by_created ON runs (created DESC, id DESC);
CREATE INDEX runs_by_cluster_created ON runs (cluster, created DESC, id DESC);

CREATE TABLE decisions (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id     TEXT NOT NULL,
	checkpoint TEXT NOT NULL,
	data       TEXT NOT NULL,
	-- first decision wins: one per checkpoint ("" is the run's cancel)
	UNIQUE (run_id, checkpoint)
) STRICT;

CREATE TABLE audit (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	at      INTEGER NOT NULL,
	user_id TEXT NOT NULL,
	channel TEXT NOT NULL DEFAULT '',
	via     TEXT NOT NULL DEFAULT '',
	action  TEXT NOT NULL,
	run_id  TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_by_at ON audit (at);
CREATE INDEX audit_by_run ON audit (run_id, id) WHERE run_id <> '';

CREATE TABLE windows (
	id      TEXT PRIMARY KEY,
	cluster TEXT NOT NULL,
	data    TEXT NOT NULL
) STRICT;

CREATE TABLE notes (
	scope TEXT NOT NULL,
	key   TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (scope, key)
) STRICT;

-- Keys seen recently (replayed requests), until expires.
CREATE TABLE seen (
	key     TEXT PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT;
CREATE INDEX seen_by_expires ON seen (expires);
`},
}

// SchemaVersion is the schema version this nocobot writes.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// ErrSchemaTooNew: the file was migrated by a newer nocobot.
var ErrSchemaTooNew = errors.New("store schema is newer than this nocobot")

type tooNewError struct{ file, binary int }

func (e *tooNewError) Error() string {
	return fmt.Sprintf("schema version %d is newer than this nocobot (%d): upgrade nocobot", e.file, e.binary)
}

func (e *tooNewError) Unwrap() error { return ErrSchemaTooNew }

// migrate brings the file to the last of ms and returns the version found
// before and after. The immediate transaction makes processes that open
// a new file together take turns: one migrates, the others find it done.
func migrate(ctx context.Context, db *sql.DB, ms []migration, log zerolog.Logger) (from, to int, err error) {
	latest := ms[len(ms)-1].version
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("lock for migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version INTEGER PRIMARY KEY,
	name    TEXT NOT NULL,
	applied INTEGER NOT NULL
) STRICT`); err != nil {
		return 0, 0, fmt.Errorf("create version table: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&from); err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if from > latest {
		return from, from, &tooNewError{file: from, binary: latest}
	}
	to = from
	for _, m := range ms {
		if m.version <= from {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return from, to, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version, name, applied) VALUES (?, ?, unixepoch())", m.version, m.name); err != nil {
			return from, to, fmt.Errorf("record migration %d: %w", m.version, err)
		}
		log.Info().Int("version", m.version).Str("migration", m.name).Msg("applied store schema migration")
		to = m.version
	}
	if err := tx.Commit(); err != nil {
		return from, to, fmt.Errorf("commit migration: %w", err)
	}
	return from, to, nil
}
