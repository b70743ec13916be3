package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// migration is one step of the schema's history. {schema} in SQL stands
// for the quoted schema name.
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
//	1  runs (one active run per cluster), decisions, audit, windows, notes
//	2  seen keys (the replay guard of requests)
var migrations = []migration{
	{version: 1, name: "runs, decisions, audit, windows, notes", sql: `
CREATE TABLE {schema}.runs (
	id          text PRIMARY KEY,
	cluster     text NOT NULL,
	procedure   text NOT NULL,
	state       text NOT NULL,
	-- active: the run is not finished. The unique index below makes at
	-- most one active run per cluster: that is the cluster lock.
	active      boolean NOT NULL,
	created     timestamptz NOT NULL,
	updated     timestamptz NOT NULL,
	-- owner and lease_until are kept here, not in data, so claims are
	-- single statements; lease_until is on the database's clock.
	owner       text NOT NULL DEFAULT '',
	lease_until timestamptz,
	data        jsonb NOT NULL
);
CREATE UNIQUE INDEX runs_one_active_per_cluster ON {schema}.runs (cluster) WHERE active;
CREATE INDEX runs_by_created ON {schema}.runs (created DESC, id DESC);
CREATE INDEX runs_by_cluster_created ON {schema}.runs (cluster, created DESC, id DESC);

CREATE TABLE {schema}.decisions (
	seq        bigserial PRIMARY KEY,
	run_id     text NOT NULL,
	checkpoint text NOT NULL,
	data       jsonb NOT NULL,
	-- first decision wins: one per checkpoint ("" is the run's cancel)
	UNIQUE (run_id, checkpoint)
);

CREATE TABLE {schema}.audit (
	id      bigserial PRIMARY KEY,
	at      timestamptz NOT NULL,
	user_id text NOT NULL,
	channel text NOT NULL DEFAULT '',
	via     text NOT NULL DEFAULT '',
	action  text NOT NULL,
	run_id  text NOT NULL DEFAULT '',
	outcome text NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_at ON {schema}.audit (at);
CREATE INDEX audit_by_run ON {schema}.audit (run_id, id) WHERE run_id <> '';

CREATE TABLE {schema}.windows (
	id      text PRIMARY KEY,
	cluster text NOT NULL,
	data    jsonb NOT NULL
);

CREATE TABLE {schema}.notes (
	scope text NOT NULL,
	key   text NOT NULL,
	value text NOT NULL,
	PRIMARY KEY (scope, key)
);
`},
	{version: 2, name: "seen keys", sql: `
CREATE TABLE {schema}.seen (
	key     text PRIMARY KEY,
	expires timestamptz NOT NULL
);
CREATE INDEX seen_by_expires ON {schema}.seen (expires);
`},
}

// SchemaVersion is the schema version this nocobot writes.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// ErrSchemaTooNew: the database was migrated by a newer nocobot.
var ErrSchemaTooNew = errors.New("database schema is newer than this nocobot")

type tooNewError struct{ db, binary int }

func (e *tooNewError) Error() string {
	return fmt.Sprintf("schema version %d is newer than this nocobot (%d): upgrade nocobot", e.db, e.binary)
}

func (e *tooNewError) Unwrap() error { return ErrSchemaTooNew }

// migrate brings schema to the last of ms and returns the version found
// before and after.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, ms []migration, log zerolog.Logger) (from, to int, err error) {
	latest := ms[len(ms)-1].version
	q := quoter(schema)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Replicas starting together: one migrates, the others wait here
		// and then find the work done.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "nocobot-migrate:"+schema); err != nil {
			return fmt.Errorf("lock for migration: %w", err)
		}
		// Check first, so a schema a DBA created for us works without the
		// CREATE privilege on the database.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, q("CREATE SCHEMA {schema}")); err != nil {
				return fmt.Errorf("create schema %s: %w", schema, err)
			}
		}
		if _, err := tx.Exec(ctx, q(`CREATE TABLE IF NOT EXISTS {schema}.schema_version (
	version integer PRIMARY KEY,
	name    text NOT NULL,
	applied timestamptz NOT NULL DEFAULT now()
)`)); err != nil {
			return fmt.Errorf("create version table: %w", err)
		}
		if err := tx.QueryRow(ctx, q("SELECT coalesce(max(version), 0) FROM {schema}.schema_version")).Scan(&from); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if from > latest {
			return &tooNewError{db: from, binary: latest}
		}
		to = from
		for _, m := range ms {
			if m.version <= from {
				continue
			}
			if _, err := tx.Exec(ctx, q(m.sql)); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, q("INSERT INTO {schema}.schema_version (version, name) VALUES ($1, $2)"), m.version, m.name); err != nil {
				return fmt.Errorf("record migration %d: %w", m.version, err)
			}
			log.Info().Str("schema", schema).Int("version", m.version).Str("migration", m.name).Msg("applied schema migration")
			to = m.version
		}
		return nil
	})
	return from, to, err
}
