// Package testenv gives tests the real services that scripts/test starts:
// a Docker engine, a PostgreSQL server and the nginx binary. Outside
// scripts/test a test that needs one is skipped; under it (where
// NOCOBOT_TEST_REQUIRE=1) a missing service fails the test, so CI can never
// pass by skipping.
package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func need(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if os.Getenv("NOCOBOT_TEST_REQUIRE") == "1" {
		t.Fatalf("%s is not set: scripts/test should have started %s", env, what)
	}
	t.Skipf("needs %s: run scripts/test", what)
	return ""
}

// DockerHost returns the test engine's address, e.g. "unix:///tmp/…/docker.sock".
func DockerHost(t testing.TB) string {
	return need(t, "NOCOBOT_TEST_DOCKER_HOST", "a Docker engine")
}

// PostgresURL returns the URL of the test server's postgres database.
func PostgresURL(t testing.TB) string {
	return need(t, "NOCOBOT_TEST_PG_URL", "a PostgreSQL server")
}

// PostgresBin returns the folder of the server's binaries (pg_dump, …).
func PostgresBin(t testing.TB) string {
	return need(t, "NOCOBOT_TEST_PG_BIN", "a PostgreSQL server")
}

// Postgres18URL returns the URL of the postgres database of the test's
// PostgreSQL 18 server (scripts/pg18), and the type of the filesystem its
// data directory is on ("xfs" where scripts/test could mount one).
func Postgres18URL(t testing.TB) (url, fsType string) {
	return need(t, "NOCOBOT_TEST_PG18_URL", "a PostgreSQL 18 server"), os.Getenv("NOCOBOT_TEST_PG18_FS")
}

var dbSeq atomic.Int64

// NewDatabase creates an empty database for one test, dropped at its end,
// and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return NewDatabaseOn(t, PostgresURL(t))
}

// NewDatabaseOn is NewDatabase on the server of base, the URL of its
// postgres database.
func NewDatabaseOn(t testing.TB, base string) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	if err := admin("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() { _ = admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Nginx returns the path of the nginx binary.
func Nginx(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nginx", "/usr/bin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	need(t, "NOCOBOT_TEST_NGINX", "nginx")
	return ""
}

// TempDir returns a folder for files that containers of the test engine
// must see (the engine runs as root; t.TempDir paths work too, but long
// unix socket paths do not).
func TempDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("NOCOBOT_TEST_TMP")
	if base == "" {
		return t.TempDir()
	}
	d, err := os.MkdirTemp(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}
