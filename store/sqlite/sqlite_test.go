package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/storetest"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openAt opens the store at path and closes it when the test ends.
func openAt(t testing.TB, path string, opt ...Option) *Store {
	t.Helper()
	s, err := Open(testCtx(t), path, zerolog.Nop(), opt...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(testCtx(t), filepath.Join(t.TempDir(), "nocobot.db"), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The folder is made on first use (the example configuration names one
// that a fresh machine does not have) and the file is the owner's only.
func TestFolderCreatedOnFirstUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "lib", "nocobot", "nocobot.db")
	s := openAt(t, path)
	if _, err := s.CreateRun(testCtx(t), storetest.NewRun("r1", "prod", time.Now())); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file mode %v, want 0600", fi.Mode().Perm())
	}
	// A path with characters that mean something in a URI.
	odd := filepath.Join(t.TempDir(), "a?b#c%20d", "n.db")
	openAt(t, odd)
	if _, err := os.Stat(odd); err != nil {
		t.Fatalf("store at %s: %v", odd, err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(testCtx(t), "", zerolog.Nop()); err == nil {
		t.Fatal("an empty path was accepted")
	}
	notDB := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(testCtx(t), notDB, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), notDB) {
		t.Fatalf("Open on a text file = %v, want an error naming the file", err)
	}
	if strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("error spans several lines: %q", err)
	}
}

func schemaVersions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.r.QueryContext(testCtx(t), "SELECT version FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestMigrations(t *testing.T) {
	t.Run("NewFileThenIdempotent", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nocobot.db")
		s := openAt(t, path)
		if _, err := s.CreateRun(testCtx(t), storetest.NewRun("r1", "prod", time.Now())); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = openAt(t, path)
		if _, err := s.GetRun(testCtx(t), "r1"); err != nil {
			t.Fatalf("run lost by a second Open: %v", err)
		}
		if vs := schemaVersions(t, s); len(vs) != len(migrations) || vs[len(vs)-1] != SchemaVersion() {
			t.Fatalf("schema_version rows = %v, want one per migration up to %d", vs, SchemaVersion())
		}
	})

	t.Run("ProcessesOpeningANewFileTogether", func(t *testing.T) {
		// Each Store has its own connections, as a process has.
		path := filepath.Join(t.TempDir(), "nocobot.db")
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(testCtx(t), path, zerolog.Nop())
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
		if vs := schemaVersions(t, openAt(t, path)); len(vs) != len(migrations) {
			t.Fatalf("schema_version rows = %v after concurrent Opens", vs)
		}
	})

	t.Run("FromEachEarlierVersion", func(t *testing.T) {
		next := migration{version: SchemaVersion() + 1, name: "test: notes get a timestamp",
			sql: "ALTER TABLE notes ADD COLUMN saved INTEGER NOT NULL DEFAULT 0"}
		all := append(append([]migration(nil), migrations...), next)
		for i := range all[:len(all)-1] {
			path := filepath.Join(t.TempDir(), "nocobot.db")
			if err := prepareFile(path); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", dsn(path, time.Second, true))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := migrate(testCtx(t), db, all[:i+1], zerolog.Nop()); err != nil {
				t.Fatalf("migrate to %d: %v", all[i].version, err)
			}
			if _, err := db.ExecContext(testCtx(t), "INSERT INTO notes (scope, key, value) VALUES ('slack-thread', 'r1', 'C1/1')"); err != nil {
				t.Fatal(err)
			}
			from, to, err := migrate(testCtx(t), db, all, zerolog.Nop())
			if err != nil || from != all[i].version || to != next.version {
				t.Fatalf("upgrade from %d: %d → %d, %v", all[i].version, from, to, err)
			}
			var v string
			if err := db.QueryRowContext(testCtx(t), "SELECT value FROM notes WHERE key = 'r1'").Scan(&v); err != nil || v != "C1/1" {
				t.Fatalf("note after upgrade = %q, %v", v, err)
			}
			db.Close()
			// The binary (which knows only the real migrations) now meets
			// a newer file.
			if _, err := Open(testCtx(t), path, zerolog.Nop()); !errors.Is(err, ErrSchemaTooNew) {
				t.Fatalf("Open on a newer schema = %v", err)
			}
		}
	})

	t.Run("NewerSchemaRefused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nocobot.db")
		s := openAt(t, path)
		if _, err := s.w.ExecContext(testCtx(t), "INSERT INTO schema_version (version, name, applied) VALUES (?, 'from the future', 0)", SchemaVersion()+4); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err := Open(testCtx(t), path, zerolog.Nop())
		want := fmt.Sprintf("schema version %d is newer than this nocobot (%d): upgrade nocobot", SchemaVersion()+4, SchemaVersion())
		if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Open = %v, want an error saying %q", err, want)
		}
	})
}

// Two Stores on one file (two processes' worth of connections): one
// cluster lock, one window start, and each sees the other's writes.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	a, b := openAt(t, path), openAt(t, path)
	ctx := testCtx(t)

	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			_, errs[i] = s.CreateRun(ctx, storetest.NewRun(fmt.Sprintf("c%d", i), "prod", time.Now()))
		}()
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, store.ErrClusterBusy):
			t.Fatalf("CreateRun: %v", err)
		}
	}
	if created != 1 {
		t.Fatalf("20 starts through two stores: %d created, want 1", created)
	}
	ra, err := a.ActiveRun(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.ActiveRun(ctx, "prod")
	if err != nil || rb.ID != ra.ID {
		t.Fatalf("the other store sees active run %q, %v; want %q", rb.ID, err, ra.ID)
	}

	if _, err := a.ClaimRun(ctx, ra.ID, "engine-a", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimRun(ctx, ra.ID, "engine-b", time.Now().Add(time.Minute)); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("claim through the other store = %v, want ErrNotOwner", err)
	}
}

// The poller runs only while someone watches, and a new watcher after a
// quiet spell hears decisions from then on, not old ones.
func TestPollerOnlyWhileWatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	a, b := openAt(t, path), openAt(t, path)
	polling := func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.pollDone != nil
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	if _, err := a.WatchDecisions(ctx); err != nil {
		t.Fatal(err)
	}
	if !polling() {
		t.Fatal("no poller while a watcher exists")
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for polling() {
		if time.Now().After(deadline) {
			t.Fatal("the poller still runs 5 s after the last watcher left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.Decide(testCtx(t), store.Decision{RunID: "old", Checkpoint: "c", Action: store.ActionAbort, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	watch, err := a.WatchDecisions(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decide(testCtx(t), store.Decision{RunID: "new", Checkpoint: "c", Action: store.ActionAbort, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-watch:
		if id != "new" {
			t.Fatalf("a new watcher heard %q first, want the decision recorded after it began (new)", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a decision of the other store not heard within 5 s")
	}
}
