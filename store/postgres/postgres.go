// Package postgres is the PostgreSQL store (pgx), the one to use when
// several nocobot replicas share their state.
//
// Everything lives in one schema of its own (default "nocobot"), so the
// store can share a server, even a database, with NocoBase. The schema is
// created and upgraded on Open by the migrations in migrate.go.
//
// Replicas: the cluster lock is a unique index on the runs that are not
// finished, so of any number of concurrent CreateRun calls for a cluster
// exactly one wins. Leases are kept on the database's clock (see
// leaseMicros), so the replicas' own clocks need not agree. Decide sends
// a NOTIFY in its own transaction and every Store keeps one connection
// that LISTENs, so a decision recorded by one replica reaches the owner
// of the run at once.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/internal/broadcast"
)

// DefaultSchema is where the tables live unless told otherwise.
const DefaultSchema = "nocobot"

// Option changes how Open connects.
type Option func(*options)

type options struct {
	password       string
	queryTimeout   time.Duration
	connectTimeout time.Duration
	maxConns       int32
	listenCheck    time.Duration
}

// WithPassword sets the password, for URLs that carry none (main reads it
// from the environment so it never sits in the config file). It is never
// logged.
func WithPassword(pw string) Option { return func(o *options) { o.password = pw } }

// WithQueryTimeout bounds every call on the store, on top of the caller's
// context (default 10 s).
func WithQueryTimeout(d time.Duration) Option { return func(o *options) { o.queryTimeout = d } }

// WithConnectTimeout bounds opening one connection (default 5 s).
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connectTimeout = d } }

// WithMaxConns caps the pool (default 8; the bot is not a heavy user).
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// withListenCheck sets how long the LISTEN connection may stay silent
// before it is pinged (tests shorten it).
func withListenCheck(d time.Duration) Option { return func(o *options) { o.listenCheck = d } }

// Store is the PostgreSQL store.
type Store struct {
	pool    *pgxpool.Pool
	log     zerolog.Logger
	opts    options
	schema  string
	q       func(string) string
	channel string // NOTIFY channel of decisions

	bg     context.Context // ends on Close
	stop   context.CancelFunc
	closed sync.Once

	fan *broadcast.Broadcaster

	mu            sync.Mutex
	closing       bool
	listenStarted bool
	listening     chan struct{} // closed once the first LISTEN is in place
	listenDone    chan struct{} // closed when the listener has stopped
	listenErr     error         // why the LISTEN connection is down, if it is
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url, creates or upgrades the schema
// (default "nocobot") and returns the store. A database whose schema is
// newer than this binary is refused (ErrSchemaTooNew).
func Open(ctx context.Context, url, schema string, log zerolog.Logger, opt ...Option) (*Store, error) {
	o := options{queryTimeout: 10 * time.Second, connectTimeout: 5 * time.Second, maxConns: 8, listenCheck: 30 * time.Second}
	for _, f := range opt {
		f(&o)
	}
	if schema == "" {
		schema = DefaultSchema
	}
	// The NOTIFY channel is named after the schema and must fit in an
	// identifier (63 bytes).
	if len(schema) > 50 {
		return nil, fmt.Errorf("postgres store: schema name %q is longer than 50 bytes", schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts passwords from its parse errors on a best-effort
		// basis; make sure.
		return nil, fmt.Errorf("postgres store: invalid database URL: %s", redact(err.Error(), o.password, urlPassword(url)))
	}
	if o.password != "" {
		cfg.ConnConfig.Password = o.password
	}
	cfg.MaxConns = o.maxConns
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 15 * time.Second
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.connectTimeout {
		cfg.ConnConfig.ConnectTimeout = o.connectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "nocobot"
	}
	where := log.With().Str("host", cfg.ConnConfig.Host).Uint16("port", cfg.ConnConfig.Port).
		Str("database", cfg.ConnConfig.Database).Str("user", cfg.ConnConfig.User).Str("schema", schema).Logger()

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %s", redact(err.Error(), cfg.ConnConfig.Password))
	}
	mctx, cancel := context.WithTimeout(ctx, max(o.queryTimeout, time.Minute))
	defer cancel()
	from, to, err := migrate(mctx, pool, schema, migrations, where)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store %s:%d/%s schema %s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, schema,
			redactErr(err, cfg.ConnConfig.Password))
	}
	bg, stop := context.WithCancel(context.Background())
	s := &Store{
		pool: pool, log: log, opts: o, schema: schema, q: quoter(schema), channel: schema + ".decisions",
		bg: bg, stop: stop, fan: broadcast.New(),
		listening: make(chan struct{}), listenDone: make(chan struct{}),
	}
	where.Info().Int("schema_version", to).Int("was", from).Msg("postgres store ready")
	return s, nil
}

// Close stops the LISTEN connection and closes the pool. Watch channels
// close.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.mu.Lock()
		s.closing = true // no listener starts after this
		started := s.listenStarted
		s.mu.Unlock()
		s.stop()
		s.fan.Close()
		if started {
			<-s.listenDone
		}
		s.pool.Close()
	})
	return nil
}

func quoter(schema string) func(string) string {
	quoted := pgx.Identifier{schema}.Sanitize()
	return func(sql string) string { return strings.ReplaceAll(sql, "{schema}", quoted) }
}

func urlPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

func redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// redactErr returns err itself unless a secret shows in its message; then
// a plain error with the secret blotted out (the chain is lost, which is
// the price of never printing a password).
func redactErr(err error, secrets ...string) error {
	msg := redact(err.Error(), secrets...)
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// op bounds one call: the caller's deadline and ours, whichever is first.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.queryTimeout)
}

// leaseMicros turns a lease end computed on this process's clock into a
// duration the database adds to its own now(). Comparing every lease with
// the database's now() gives all replicas one clock, so a replica whose
// clock runs ahead can neither steal a live lease nor keep a dead one;
// the only cost is that a lease is longer by the network latency of the
// call. nil (NULL) means no lease.
func leaseMicros(until time.Time) *int64 {
	if until.IsZero() {
		return nil
	}
	us := time.Until(until).Microseconds()
	return &us
}

// leaseFree is the SQL condition under which owner $o may write a run:
// the embedded store's leaseLive, negated, on the database clock.
const leaseFree = `(owner = '' OR owner = %s OR lease_until IS NULL OR lease_until <= now())`

// encodeRun stores the run without owner and lease, which have columns.
func encodeRun(r store.Run) ([]byte, error) {
	r.Owner, r.LeaseUntil = "", time.Time{}
	return json.Marshal(r)
}

func decodeRun(data []byte, owner string, lease *time.Time) (store.Run, error) {
	var r store.Run
	if err := json.Unmarshal(data, &r); err != nil {
		return store.Run{}, fmt.Errorf("decode run: %w", err)
	}
	r.Owner = owner
	if lease != nil {
		r.LeaseUntil = *lease
	}
	return r, nil
}

const runCols = "data, owner, lease_until"

func scanRun(row pgx.Row) (store.Run, error) {
	var (
		data  []byte
		owner string
		lease *time.Time
	)
	if err := row.Scan(&data, &owner, &lease); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return store.Run{}, store.ErrNotFound
		}
		return store.Run{}, err
	}
	return decodeRun(data, owner, lease)
}

func collectRuns(rows pgx.Rows, err error) ([]store.Run, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Run, error) { return scanRun(row) })
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// CreateRun implements store.Store.
func (s *Store) CreateRun(ctx context.Context, r store.Run) (store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	data, err := encodeRun(r)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run %s: %w", r.ID, err)
	}
	// A few rounds: a conflict with a run that finishes just then leaves
	// nothing to report, and the next insert may win.
	for range 5 {
		var lease *time.Time
		err := s.pool.QueryRow(ctx, s.q(`INSERT INTO {schema}.runs
	(id, cluster, procedure, state, active, created, updated, owner, lease_until, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + $9::bigint * interval '1 microsecond', $10)
ON CONFLICT DO NOTHING
RETURNING lease_until`),
			r.ID, r.Cluster, r.Procedure, string(r.State), !r.State.Finished(), r.Created, r.Updated, r.Owner, leaseMicros(r.LeaseUntil), data).Scan(&lease)
		if err == nil {
			if lease != nil {
				r.LeaseUntil = *lease
			}
			return r, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.Run{}, fmt.Errorf("create run %s: %w", r.ID, err)
		}
		// A conflict: the cluster's lock or the id. Report the busy
		// cluster first, as the embedded store does.
		if !r.State.Finished() {
			busy, err := scanRun(s.pool.QueryRow(ctx, s.q("SELECT "+runCols+" FROM {schema}.runs WHERE cluster = $1 AND active"), r.Cluster))
			if err == nil {
				return busy, fmt.Errorf("create run %s on %s: %w", r.ID, r.Cluster, store.ErrClusterBusy)
			}
			if !errors.Is(err, store.ErrNotFound) {
				return store.Run{}, fmt.Errorf("create run %s: %w", r.ID, err)
			}
		}
		var exists bool
		if err := s.pool.QueryRow(ctx, s.q("SELECT EXISTS (SELECT 1 FROM {schema}.runs WHERE id = $1)"), r.ID).Scan(&exists); err != nil {
			return store.Run{}, fmt.Errorf("create run %s: %w", r.ID, err)
		}
		if exists {
			return store.Run{}, fmt.Errorf("run %s: %w", r.ID, store.ErrExists)
		}
	}
	return store.Run{}, fmt.Errorf("create run %s: the cluster lock of %s kept changing hands", r.ID, r.Cluster)
}

// UpdateRun implements store.Store.
func (s *Store) UpdateRun(ctx context.Context, r store.Run) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	data, err := encodeRun(r)
	if err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	// One statement fences on the owner: it writes only if the lease is
	// ours, free or lapsed.
	tag, err := s.pool.Exec(ctx, s.q(`UPDATE {schema}.runs SET
	cluster = $2, procedure = $3, state = $4, active = $5, created = $6, updated = $7, owner = $8,
	lease_until = now() + $9::bigint * interval '1 microsecond', data = $10
WHERE id = $1 AND `+fmt.Sprintf(leaseFree, "$8")),
		r.ID, r.Cluster, r.Procedure, string(r.State), !r.State.Finished(), r.Created, r.Updated, r.Owner, leaseMicros(r.LeaseUntil), data)
	if isUniqueViolation(err) {
		// Only a finished run made unfinished again can meet this: the
		// cluster has another run by now.
		return fmt.Errorf("update run %s: %w", r.ID, store.ErrClusterBusy)
	}
	if err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return fmt.Errorf("update run %s: %w", r.ID, s.whyNot(ctx, r.ID))
}

// whyNot explains an update that matched no row: no such run, or someone
// else's live lease.
func (s *Store) whyNot(ctx context.Context, id string) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, s.q("SELECT EXISTS (SELECT 1 FROM {schema}.runs WHERE id = $1)"), id).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return store.ErrNotFound
	}
	return store.ErrNotOwner
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, id string) (store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := scanRun(s.pool.QueryRow(ctx, s.q("SELECT "+runCols+" FROM {schema}.runs WHERE id = $1"), id))
	if err != nil {
		return store.Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(ctx context.Context, cluster string, limit int) ([]store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	runs, err := collectRuns(s.pool.Query(ctx, s.q(`SELECT `+runCols+` FROM {schema}.runs
WHERE $1 = '' OR cluster = $1 ORDER BY created DESC, id DESC LIMIT $2`), cluster, lim))
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// ActiveRun implements store.Store.
func (s *Store) ActiveRun(ctx context.Context, cluster string) (store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := scanRun(s.pool.QueryRow(ctx, s.q("SELECT "+runCols+" FROM {schema}.runs WHERE cluster = $1 AND active"), cluster))
	if err != nil {
		return store.Run{}, fmt.Errorf("active run of %s: %w", cluster, err)
	}
	return r, nil
}

// UnfinishedRuns implements store.Store.
func (s *Store) UnfinishedRuns(ctx context.Context) ([]store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	runs, err := collectRuns(s.pool.Query(ctx, s.q("SELECT "+runCols+" FROM {schema}.runs WHERE active ORDER BY created, id")))
	if err != nil {
		return nil, fmt.Errorf("unfinished runs: %w", err)
	}
	return runs, nil
}

// ClaimRun implements store.Store. The returned run's LeaseUntil is on
// the database's clock.
func (s *Store) ClaimRun(ctx context.Context, id, owner string, until time.Time) (store.Run, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := scanRun(s.pool.QueryRow(ctx, s.q(`UPDATE {schema}.runs SET
	owner = $2, lease_until = now() + $3::bigint * interval '1 microsecond'
WHERE id = $1 AND `+fmt.Sprintf(leaseFree, "$2")+`
RETURNING `+runCols), id, owner, leaseMicros(until)))
	if errors.Is(err, store.ErrNotFound) {
		err = s.whyNot(ctx, id)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("claim run %s: %w", id, err)
	}
	return r, nil
}

// ReleaseRun implements store.Store.
func (s *Store) ReleaseRun(ctx context.Context, id, owner string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q("UPDATE {schema}.runs SET owner = '', lease_until = NULL WHERE id = $1 AND owner = $2"), id, owner)
	if err == nil && tag.RowsAffected() == 0 {
		// Not ours (nothing to do), or no such run.
		if err = s.whyNot(ctx, id); errors.Is(err, store.ErrNotOwner) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("release run %s: %w", id, err)
	}
	return nil
}

// Decide implements store.Store. The NOTIFY is part of the insert's
// statement, so it is sent exactly when the decision commits.
func (s *Store) Decide(ctx context.Context, d store.Decision) (store.Decision, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	data, err := json.Marshal(d)
	if err != nil {
		return store.Decision{}, fmt.Errorf("record decision on %s: %w", d.RunID, err)
	}
	var seq int64
	err = s.pool.QueryRow(ctx, s.q(`WITH ins AS (
	INSERT INTO {schema}.decisions (run_id, checkpoint, data) VALUES ($1, $2, $3)
	ON CONFLICT (run_id, checkpoint) DO NOTHING
	RETURNING seq, run_id
)
SELECT ins.seq FROM ins CROSS JOIN LATERAL pg_notify($4, ins.seq::text || ' ' || ins.run_id)`),
		d.RunID, d.Checkpoint, data, s.channel).Scan(&seq)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Decision{}, fmt.Errorf("record decision on %s: %w", d.RunID, err)
	}
	// Someone decided first (ON CONFLICT waited for their commit).
	var old []byte
	if err := s.pool.QueryRow(ctx, s.q("SELECT data FROM {schema}.decisions WHERE run_id = $1 AND checkpoint = $2"), d.RunID, d.Checkpoint).Scan(&old); err != nil {
		return store.Decision{}, fmt.Errorf("record decision on %s: read the earlier decision: %w", d.RunID, err)
	}
	var existing store.Decision
	if err := json.Unmarshal(old, &existing); err != nil {
		return store.Decision{}, fmt.Errorf("record decision on %s: %w", d.RunID, err)
	}
	return existing, fmt.Errorf("decision on %s checkpoint %q: %w", d.RunID, d.Checkpoint, store.ErrAlreadyDecided)
}

// Decisions implements store.Store.
func (s *Store) Decisions(ctx context.Context, runID string) ([]store.Decision, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q("SELECT data FROM {schema}.decisions WHERE run_id = $1 ORDER BY seq"), runID)
	if err != nil {
		return nil, fmt.Errorf("decisions of %s: %w", runID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Decision, error) {
		var data []byte
		var d store.Decision
		if err := row.Scan(&data); err != nil {
			return d, err
		}
		return d, json.Unmarshal(data, &d)
	})
	if err != nil {
		return nil, fmt.Errorf("decisions of %s: %w", runID, err)
	}
	return out, nil
}
