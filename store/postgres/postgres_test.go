package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/storetest"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openAt opens a store on dbURL and closes it when the test ends.
func openAt(t testing.TB, dbURL, schema string, opt ...Option) *Store {
	t.Helper()
	s, err := Open(testCtx(t), dbURL, schema, zerolog.Nop(), opt...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(testCtx(t), testenv.NewDatabase(t), "", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The suite again in a schema whose name needs quoting, next to a
// "nocobot" schema holding another deployment's runs: nothing leaks.
func TestSchemaIsolation(t *testing.T) {
	db := testenv.NewDatabase(t)
	other := openAt(t, db, "")
	if _, err := other.CreateRun(testCtx(t), storetest.NewRun("r1", "prod", time.Now())); err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(testCtx(t), testenv.NewDatabase(t), `Nocobot "Staging"`, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	s := openAt(t, db, "nocobot_b")
	if _, err := s.CreateRun(testCtx(t), storetest.NewRun("r1", "prod", time.Now())); err != nil {
		t.Fatalf("same run id and cluster in another schema: %v", err)
	}
	if runs, _ := s.ListRuns(testCtx(t), "", 0); len(runs) != 1 {
		t.Fatalf("schema nocobot_b sees %d runs, want 1", len(runs))
	}
}

func schemaVersions(t *testing.T, dbURL, schema string) []int {
	t.Helper()
	c, err := pgx.Connect(testCtx(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	rows, _ := c.Query(testCtx(t), "SELECT version FROM "+pgx.Identifier{schema, "schema_version"}.Sanitize()+" ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func execSQL(t *testing.T, dbURL, sql string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(testCtx(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func TestMigrations(t *testing.T) {
	t.Run("EmptyDatabaseThenIdempotent", func(t *testing.T) {
		db := testenv.NewDatabase(t)
		s := openAt(t, db, "")
		if _, err := s.CreateRun(testCtx(t), storetest.NewRun("r1", "prod", time.Now())); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = openAt(t, db, "")
		if _, err := s.GetRun(testCtx(t), "r1"); err != nil {
			t.Fatalf("run lost by a second Open: %v", err)
		}
		if vs := schemaVersions(t, db, DefaultSchema); len(vs) != len(migrations) || vs[len(vs)-1] != SchemaVersion() {
			t.Fatalf("schema_version rows = %v, want one per migration up to %d", vs, SchemaVersion())
		}
	})

	t.Run("ReplicasStartingTogether", func(t *testing.T) {
		db := testenv.NewDatabase(t)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(testCtx(t), db, "", zerolog.Nop())
				if err == nil {
					s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent first Opens: %v", err)
		}
		if vs := schemaVersions(t, db, DefaultSchema); len(vs) != len(migrations) {
			t.Fatalf("schema_version rows = %v after concurrent Opens", vs)
		}
	})

	t.Run("FromEachEarlierVersion", func(t *testing.T) {
		// Every released version upgrades to the latest with its data. A
		// made-up next migration stands in for the future when there is
		// only one.
		next := migration{version: SchemaVersion() + 1, name: "test: notes get a timestamp",
			sql: "ALTER TABLE {schema}.notes ADD COLUMN saved timestamptz NOT NULL DEFAULT now()"}
		all := append(append([]migration(nil), migrations...), next)
		for i := range all[:len(all)-1] {
			db := testenv.NewDatabase(t)
			pool, err := pgxpool.New(testCtx(t), db)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := migrate(testCtx(t), pool, "nocobot", all[:i+1], zerolog.Nop()); err != nil {
				t.Fatalf("migrate to %d: %v", all[i].version, err)
			}
			execSQL(t, db, `INSERT INTO nocobot.notes (scope, key, value) VALUES ('slack-thread', 'r1', 'C1/1')`)
			from, to, err := migrate(testCtx(t), pool, "nocobot", all, zerolog.Nop())
			if err != nil || from != all[i].version || to != next.version {
				t.Fatalf("upgrade from %d: %d → %d, %v", all[i].version, from, to, err)
			}
			pool.Close()
			// The binary (which knows only the real migrations) now meets
			// a newer database.
			if _, err := Open(testCtx(t), db, "", zerolog.Nop()); !errors.Is(err, ErrSchemaTooNew) {
				t.Fatalf("Open on a newer schema = %v", err)
			}
		}
	})

	t.Run("NewerSchemaRefused", func(t *testing.T) {
		db := testenv.NewDatabase(t)
		openAt(t, db, "").Close()
		execSQL(t, db, "INSERT INTO nocobot.schema_version (version, name) VALUES ($1, 'from the future')", SchemaVersion()+4)
		_, err := Open(testCtx(t), db, "", zerolog.Nop())
		want := fmt.Sprintf("schema version %d is newer than this nocobot (%d): upgrade nocobot", SchemaVersion()+4, SchemaVersion())
		if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Open = %v, want an error saying %q", err, want)
		}
	})
}

// Passwords never show in errors or logs, whether in the URL or given
// separately.
func TestPasswordNeverShown(t *testing.T) {
	const secret = "s3cret-Pa55"
	var logs bytes.Buffer
	log := zerolog.New(&logs)

	// A server that is not there: the connection error must not carry it.
	_, err := Open(testCtx(t), "postgres://nocobot:"+secret+"@127.0.0.1:1/nocobot?sslmode=disable", "", log, WithConnectTimeout(time.Second))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Open on a closed port = %v (must fail without the password)", err)
	}
	_, err = Open(testCtx(t), "postgres://nocobot@127.0.0.1:1/nocobot?sslmode=disable", "", log, WithPassword(secret), WithConnectTimeout(time.Second))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Open with WithPassword on a closed port = %v", err)
	}
	_, err = Open(testCtx(t), "postgres://nocobot:"+secret+"@127.0.0.1:bad/x", "", log)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Open with a malformed URL = %v", err)
	}

	// A working server, password given separately (trust auth ignores it).
	u, _ := url.Parse(testenv.NewDatabase(t))
	u.User = url.User("postgres")
	s, err := Open(testCtx(t), u.String(), "", log, WithPassword(secret))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("the password is in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "postgres store ready") {
		t.Fatalf("no ready line in the logs:\n%s", logs.String())
	}
}

// Leases are compared on the database's clock: a replica whose clock is
// off by minutes still cannot take a live lease, and its own lease lasts
// what it asked for.
func TestLeaseUsesDatabaseClock(t *testing.T) {
	s := openAt(t, testenv.NewDatabase(t), "")
	ctx := testCtx(t)
	if _, err := s.CreateRun(ctx, storetest.NewRun("r1", "prod", time.Now())); err != nil {
		t.Fatal(err)
	}
	r, err := s.ClaimRun(ctx, "r1", "a", time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var dbNow time.Time
	if err := s.pool.QueryRow(ctx, "SELECT now()").Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	if d := r.LeaseUntil.Sub(dbNow); d < 29*time.Second || d > 31*time.Second {
		t.Fatalf("lease ends %s after the database's now, want about 30 s", d)
	}
	if _, err := s.ClaimRun(ctx, "r1", "b", time.Now().Add(time.Second)); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("claim by b = %v, want ErrNotOwner", err)
	}
}
