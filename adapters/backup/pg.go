package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// runner runs a small sh script with pg tools, either on this host or in
// the database container. Dynamic values reach the script only as
// positional arguments ($1…), never spliced into its text. The password,
// if any, is written as the first line of stdin and read by the script into
// PGPASSWORD: it is never on a command line (ps, docker inspect, error
// messages) and never in the process's initial environment.
type runner interface {
	run(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) error
	where() string
}

// readPassword is the preamble of every script that connects.
const readPassword = `IFS= read -r PGPASSWORD || exit 90; if [ -n "$PGPASSWORD" ]; then export PGPASSWORD; else unset PGPASSWORD; fi; `

// withPassword prefixes stdin with the password line.
func withPassword(password string, stdin io.Reader) io.Reader {
	line := strings.NewReader(password + "\n")
	if stdin == nil {
		return line
	}
	return io.MultiReader(line, stdin)
}

// localRunner runs the pg tools of this host (PgBin) against a URL.
type localRunner struct {
	pgBin string
}

func (l localRunner) where() string { return "this host" }

func (l localRunner) run(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "nocobot"}, args...)...)
	env := os.Environ()
	if l.pgBin != "" {
		env = append(env, "PATH="+l.pgBin+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	cmd.Env = env
	cmd.Stdin, cmd.Stdout = stdin, stdout
	if stdout == nil {
		cmd.Stdout = io.Discard
	}
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	// pg_dump and pg_restore are children of sh: kill the whole group, or
	// a cancelled dump would keep running and keep our pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// containerRunner runs the pg tools inside the database container, so the
// client always matches the server's major version.
type containerRunner struct {
	containers Containers
	container  string
}

func (c containerRunner) where() string { return "container " + c.container }

func (c containerRunner) run(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	return c.containers.Exec(ctx, c.container, append([]string{"sh", "-c", script, "nocobot"}, args...), stdin, stdout)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// database is one PostgreSQL database reached through a runner.
type database struct {
	r        runner
	conninfo string // libpq connection string or URL, without the password
	password string
	name     string
	source   string // for the manifest and messages: no secrets
}

// databaseFromURL parses a postgres:// URL; the password moves out of it.
func databaseFromURL(raw, pgBin string) (*database, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("database URL: want postgres://user:password@host:port/dbname")
	}
	password, _ := u.User.Password()
	q := u.Query()
	if p := q.Get("password"); p != "" {
		password = p
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return nil, errors.New("database URL: no database name in the path")
	}
	return &database{
		r:        localRunner{pgBin: pgBin},
		conninfo: u.String(),
		password: password,
		name:     name,
		source:   "url " + u.Host + "/" + name,
	}, nil
}

// conninfoQuote quotes a libpq keyword value.
func conninfoQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func databaseInContainer(c Containers, container, name, user, password, host string, port int) *database {
	parts := []string{"dbname=" + conninfoQuote(name)}
	if user != "" {
		parts = append(parts, "user="+conninfoQuote(user))
	}
	if host != "" {
		parts = append(parts, "host="+conninfoQuote(host))
	}
	if port != 0 {
		parts = append(parts, fmt.Sprintf("port=%d", port))
	}
	return &database{
		r:        containerRunner{containers: c, container: container},
		conninfo: strings.Join(parts, " "),
		password: password,
		name:     name,
		source:   "container " + container + " database " + name,
	}
}

// query runs one SQL query with psql and returns its unaligned output.
func (d *database) query(ctx context.Context, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := d.r.run(ctx, readPassword+`exec psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"`,
		[]string{d.conninfo, sql}, withPassword(d.password, nil), &limitedWriter{w: &out, n: 1 << 20})
	if err != nil {
		return "", fmt.Errorf("query database (%s): %w", d.source, err)
	}
	return strings.TrimSpace(out.String()), nil
}

type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errors.New("output too large")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// serverInfo returns the server version and the database size in bytes.
func (d *database) serverInfo(ctx context.Context) (version string, size int64, err error) {
	out, err := d.query(ctx, "SELECT current_setting('server_version') || '|' || pg_database_size(current_database())")
	if err != nil {
		return "", 0, err
	}
	v, s, ok := strings.Cut(out, "|")
	if !ok {
		return "", 0, fmt.Errorf("query database (%s): unexpected answer %q", d.source, out)
	}
	_, err = fmt.Sscan(s, &size)
	return v, size, err
}

// dump streams pg_dump -Fc of the database to w.
func (d *database) dump(ctx context.Context, w io.Writer) error {
	err := d.r.run(ctx, readPassword+`exec pg_dump -Fc -d "$1"`, []string{d.conninfo}, withPassword(d.password, nil), w)
	if err != nil {
		return fmt.Errorf("pg_dump (%s, on %s): %w", d.source, d.r.where(), err)
	}
	return nil
}

// check reads a custom-format dump whole from r, as a restore would
// (every data block decompressed), without touching any database: a
// truncated or damaged dump fails here. pg_restore --list alone would read
// only the table of contents.
func (d *database) check(ctx context.Context, r io.Reader) error {
	err := d.r.run(ctx, `exec pg_restore -f /dev/null`, nil, r, nil)
	if err != nil {
		return fmt.Errorf("dump does not read back whole with pg_restore (on %s): %w", d.r.where(), err)
	}
	return nil
}

// restoreScript puts the database back exactly as the dump holds it, in one
// transaction: first every user schema is dropped (so tables, columns and
// sequences created after the backup go too — pg_restore --clean alone
// drops only what the dump contains), public is recreated with its owner,
// initial ACL and comment, large objects are unlinked; then pg_restore's script
// follows. COMMIT is sent only if pg_restore read the whole archive;
// otherwise a raised exception makes psql stop and the server roll back,
// leaving the database as it was, and the script fails even if psql did
// not notice (sh has no pipefail).
const restoreScript = readPassword + `
failed=$(mktemp) || exit 1
{
  printf '%s\n' "$2"
  if pg_restore --clean --if-exists -f -; then
    echo 'COMMIT;'
  else
    echo x > "$failed"
    # End a COPY the dump may have been cut in, then stop psql for sure.
    printf '\n\\.\n'
    echo "DO \$x\$ BEGIN RAISE EXCEPTION 'nocobot: pg_restore could not read the dump; nothing was changed'; END \$x\$;"
  fi
} | psql -X -q -v ON_ERROR_STOP=1 -o /dev/null -d "$1"
rc=$?
if [ -s "$failed" ]; then echo incomplete-dump; rc=4; fi
rm -f "$failed"
exit $rc`

const restorePreamble = `SET client_min_messages = warning;
BEGIN;
DO $nocobot$
DECLARE
  s record;
  pub record;
  a record;
BEGIN
  -- pg_dump writes public's ACL only where it differs from the initial
  -- one (pg_init_privs), so that is what the new public must start with.
  SELECT n.nspowner::regrole::text AS owner, obj_description(n.oid, 'pg_namespace') AS comment,
      coalesce((SELECT i.initprivs FROM pg_init_privs i
                 WHERE i.objoid = n.oid AND i.classoid = 'pg_namespace'::regclass AND i.objsubid = 0), n.nspacl) AS acl
    INTO pub FROM pg_namespace n WHERE n.nspname = 'public';
  FOR s IN SELECT nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_%'
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s.nspname);
  END LOOP;
  IF pub.owner IS NOT NULL THEN
    EXECUTE format('CREATE SCHEMA public AUTHORIZATION %s', pub.owner);
    IF pub.acl IS NOT NULL THEN
      EXECUTE 'REVOKE ALL ON SCHEMA public FROM ' || pub.owner;
      FOR a IN SELECT grantee, privilege_type, is_grantable FROM aclexplode(pub.acl) LOOP
        EXECUTE format('GRANT %s ON SCHEMA public TO %s%s', a.privilege_type,
          CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
          CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
    END IF;
    IF pub.comment IS NOT NULL THEN
      EXECUTE format('COMMENT ON SCHEMA public IS %L', pub.comment);
    END IF;
  END IF;
  PERFORM lo_unlink(oid) FROM pg_largeobject_metadata;
END
$nocobot$;`

// restore replaces the database's content with the dump read from r.
func (d *database) restore(ctx context.Context, r io.Reader) error {
	var out bytes.Buffer
	err := d.r.run(ctx, restoreScript, []string{d.conninfo, restorePreamble}, withPassword(d.password, r), &limitedWriter{w: &out, n: 64 << 10})
	if err != nil && strings.Contains(out.String(), "incomplete-dump") {
		return fmt.Errorf("restore database (%s): pg_restore could not read the whole dump; the transaction was rolled back, nothing was changed: %w", d.source, err)
	}
	if err != nil {
		return fmt.Errorf("restore database (%s, on %s): %w", d.source, d.r.where(), err)
	}
	return nil
}

// binPath resolves a pg tool in PgBin or PATH, for Check.
func binPath(pgBin, name string) (string, error) {
	if pgBin != "" {
		p := filepath.Join(pgBin, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s not found in %s", name, pgBin)
		}
		return p, nil
	}
	return exec.LookPath(name)
}
