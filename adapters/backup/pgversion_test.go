package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// A pg_dump older than the server refuses to dump it, and would say so
// only at the backup, inside the downtime: Check says it before.
func TestCheckRefusesPgDumpOlderThanServer(t *testing.T) {
	f := newFixture(t, 1, 1)
	real := testenv.PostgresBin(t)
	ctx := context.Background()

	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(ctx); err != nil {
		t.Fatalf("pg_dump of the server's own release: %v", err)
	}

	// The same tools, but a pg_dump that is an older release.
	old := filepath.Join(testenv.TempDir(t), "pg14")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"pg_restore", "psql"} {
		if err := os.Symlink(filepath.Join(real, tool), filepath.Join(old, tool)); err != nil {
			t.Fatal(err)
		}
	}
	shim := "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 9.6.24'; exit 0; fi\nexec " + filepath.Join(real, "pg_dump") + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(old, "pg_dump"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	o := f.localOptions(t)
	o.PgBin = old
	m, err = New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "pg_dump 9.6.24") || !strings.Contains(err.Error(), "older than the PostgreSQL 1") {
		t.Fatalf("Check with an old pg_dump = %v", err)
	}
}

func TestPgMajor(t *testing.T) {
	for v, want := range map[string]int{"15.8 (Debian 15.8-0+deb12u1)": 1500, "9.6.24": 906, "17beta1": 1700, "16": 1600} {
		if got, ok := pgMajor(v); !ok || got != want {
			t.Errorf("pgMajor(%q) = %d, %v; want %d", v, got, ok, want)
		}
	}
	if _, ok := pgMajor("unknown"); ok {
		t.Error("pgMajor of no version succeeded")
	}
}
