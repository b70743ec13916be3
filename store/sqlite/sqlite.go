// Package sqlite is the embedded store: one SQLite file, no server,
// through the pure-Go driver modernc.org/sqlite (no cgo, so the binary
// stays static).
//
// Several nocobot processes on one machine use one file at once: the
// file is in WAL mode, so readers never wait for the writer, and every
// write is a BEGIN IMMEDIATE transaction that waits (busy_timeout) for
// the one writer of the moment. Leases are real: an owner and a lease end
// on each run, compared with the clock at the moment the write lock is
// held. A decision recorded by one process reaches the watchers of
// another through a poll of the decisions table (see watch.go). WAL
// needs memory shared between the processes, so the file must be on a
// local filesystem: processes on one machine share it, replicas on
// several machines use the PostgreSQL store.
//
// Durability: synchronous=FULL makes each commit reach the disk before
// the call returns, so a kill -9 (or a power cut) loses no acknowledged
// write.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/internal/broadcast"
)

// Option changes how Open works.
type Option func(*options)

type options struct {
	queryTimeout time.Duration
	busyTimeout  time.Duration
	pollEvery    time.Duration
}

// WithQueryTimeout bounds every call on the store, on top of the caller's
// context (default 10 s).
func WithQueryTimeout(d time.Duration) Option { return func(o *options) { o.queryTimeout = d } }

// WithBusyTimeout is how long a write waits for another process's write
// to finish (default 5 s). Writes take milliseconds; a longer wait means
// a stuck process.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithPollEvery sets how often watchers look for decisions recorded by
// other processes (default 50 ms).
func WithPollEvery(d time.Duration) Option { return func(o *options) { o.pollEvery = d } }

// Store is the embedded store.
type Store struct {
	path string
	log  zerolog.Logger
	opts options
	w    *sql.DB // the one writer connection: BEGIN IMMEDIATE, synchronous=FULL
	r    *sql.DB // readers; WAL lets them run while a write is under way

	fan   *broadcast.Broadcaster
	bg    context.Context // ends on Close
	stop  context.CancelFunc
	nudge chan struct{} // a local decision: poll now

	mu       sync.Mutex
	closed   bool
	pollDone chan struct{} // non-nil while the poller runs
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path, creating its folder when
// missing, and creates or upgrades its schema. A file whose schema is
// newer than this binary is refused (ErrSchemaTooNew).
func Open(ctx context.Context, path string, log zerolog.Logger, opt ...Option) (*Store, error) {
	o := options{queryTimeout: 10 * time.Second, busyTimeout: 5 * time.Second, pollEvery: 50 * time.Millisecond}
	for _, f := range opt {
		f(&o)
	}
	if path == "" {
		return nil, errors.New("sqlite store: no file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	w, err := sql.Open("sqlite", dsn(abs, o.busyTimeout, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	mctx, cancel := context.WithTimeout(ctx, max(o.queryTimeout, time.Minute))
	defer cancel()
	from, to, err := migrateWhenFree(mctx, w, log)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(abs, o.busyTimeout, false))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	bg, stop := context.WithCancel(context.Background())
	s := &Store{path: abs, log: log, opts: o, w: w, r: r, fan: broadcast.New(), bg: bg, stop: stop, nudge: make(chan struct{}, 1)}
	log.Debug().Str("path", abs).Int("schema_version", to).Int("was", from).Msg("sqlite store ready")
	return s, nil
}

// migrateWhenFree migrates, trying again while another process holds the
// file: SQLite answers SQLITE_BUSY at once, without waiting busy_timeout,
// to a connection that opens a file another one is switching to WAL or
// recovering, as processes that open a new file together do.
func migrateWhenFree(ctx context.Context, w *sql.DB, log zerolog.Logger) (from, to int, err error) {
	err = whenFree(ctx, func() error {
		from, to, err = migrate(ctx, w, migrations, log)
		return err
	})
	return from, to, err
}

// whenFree calls try until it does not fail with SQLITE_BUSY or ctx ends.
func whenFree(ctx context.Context, try func() error) error {
	for wait := 10 * time.Millisecond; ; wait = min(wait*2, 500*time.Millisecond) {
		err := try()
		var coded interface{ Code() int }
		if err == nil || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// sqliteBusy is SQLITE_BUSY, the primary code of every busy error.
const sqliteBusy = 5

// prepareFile creates the folder and an empty file readable by its owner
// only (SQLite gives its WAL and shared-memory files the same mode).
func prepareFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create the store's folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn is a file: URI for the driver; the path is escaped so that ?, #
// and % in a folder name stay part of the name.
func dsn(path string, busy time.Duration, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Close stops the poller, closes every watch channel and the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	done := s.pollDone
	s.mu.Unlock()
	s.stop()
	s.fan.Close()
	if done != nil {
		<-done
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

// op bounds one call: the caller's deadline and ours, whichever is first.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.queryTimeout)
}

// write runs fn in one immediate transaction. now is read once the write
// lock is held, so a lease is compared with the time of the write itself,
// not of a wait for another process.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx, now time.Time) error) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var tx *sql.Tx
	err := whenFree(ctx, func() (err error) {
		tx, err = s.w.BeginTx(ctx, nil)
		return err
	})
	if err != nil {
		return err
	}
	if err := fn(tx, time.Now()); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	return tx.Commit()
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// nanos stores a time as Unix nanoseconds; the zero time as 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
