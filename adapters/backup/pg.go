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
	"regexp"
	"strconv"
	"strings"
	"time"
)

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

// postgres is one PostgreSQL database reached through a runner: pg_dump
// -Fc, read back by pg_restore, restored in one transaction through psql.
type postgres struct {
	r        runner
	conninfo string // libpq connection string or URL, without the password
	// connFor is the conninfo for another database of the same server.
	connFor  func(db string) string
	password string
	pgBin    string // local tools' folder (local mode)
	dbname   string
	src      string   // for the manifest and messages: no secrets
	exclude  []string // schemas left out of dumps and never touched by restores
	level    int      // compression level of dumps
	// copyUnknownSpace: copy even where the server's free space cannot
	// be seen (Options.CopyWhenSpaceUnknown).
	copyUnknownSpace bool
}

var _ database = (*postgres)(nil)

func (d *postgres) dialect() string    { return "postgres" }
func (d *postgres) name() string       { return d.dbname }
func (d *postgres) source() string     { return d.src }
func (d *postgres) excluded() []string { return d.exclude }

// schemaName is what ExcludeSchemas accepts: a plain identifier, so that
// it means the same to pg_dump's patterns, pg_restore and SQL.
var schemaName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func checkSchemas(names []string) error {
	for _, n := range names {
		if !schemaName.MatchString(n) {
			return fmt.Errorf("excluded schema %q: want a plain name (letters, digits, _)", n)
		}
		if n == "public" {
			return errors.New("excluded schema public: that is NocoBase's own")
		}
	}
	return nil
}

func (d *postgres) checkTools() error {
	if _, ok := d.r.(localRunner); !ok {
		return nil
	}
	var errs []error
	for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
		if _, err := binPath(d.pgBin, tool); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// postgresFromURL parses a postgres:// URL; the password moves out of it.
func postgresFromURL(opts Options) (*postgres, error) {
	u, err := url.Parse(opts.DBURL)
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
	connFor := func(db string) string {
		c := *u
		c.Path, c.RawPath = "/"+db, ""
		return c.String()
	}
	pgBin := opts.PgBin
	if pgBin == "" {
		pgBin = debianClientBin()
	}
	return &postgres{
		r:        localRunner{pgBin: pgBin},
		conninfo: u.String(),
		connFor:  connFor,
		password: password,
		pgBin:    pgBin,
		dbname:   name,
		src:      "url " + u.Host + "/" + name,
		exclude:  opts.ExcludeSchemas,
		level:    opts.CompressLevel,

		copyUnknownSpace: opts.CopyWhenSpaceUnknown,
	}, nil
}

// conninfoQuote quotes a libpq keyword value.
func conninfoQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func postgresInContainer(c Containers, opts Options) *postgres {
	var parts []string
	if opts.DBUser != "" {
		parts = append(parts, "user="+conninfoQuote(opts.DBUser))
	}
	if opts.DBHost != "" {
		parts = append(parts, "host="+conninfoQuote(opts.DBHost))
	}
	if opts.DBPort != 0 {
		parts = append(parts, fmt.Sprintf("port=%d", opts.DBPort))
	}
	connFor := func(db string) string {
		return strings.Join(append([]string{"dbname=" + conninfoQuote(db)}, parts...), " ")
	}
	return &postgres{
		r:        containerRunner{containers: c, container: opts.DBContainer},
		conninfo: connFor(opts.DBName),
		connFor:  connFor,
		password: opts.DBPassword,
		dbname:   opts.DBName,
		src:      "container " + opts.DBContainer + " database " + opts.DBName,
		exclude:  opts.ExcludeSchemas,
		level:    opts.CompressLevel,

		copyUnknownSpace: opts.CopyWhenSpaceUnknown,
	}
}

// on returns the same server's database db.
func (d *postgres) on(db string) *postgres {
	o := *d
	o.dbname, o.conninfo = db, d.connFor(db)
	return &o
}

// query runs one SQL query with psql and returns its unaligned output.
func (d *postgres) query(ctx context.Context, sql string) (string, error) {
	return d.queryWithin(ctx, sql, 30*time.Second)
}

// queryWithin is query with another time limit (0: only ctx's).
func (d *postgres) queryWithin(ctx context.Context, sql string, limit time.Duration) (string, error) {
	return d.statementsWithin(ctx, limit, sql)
}

// statementsWithin runs each SQL string as a statement of its own (psql
// -c each, in one session, stopping at the first error) within limit
// (0: only ctx's), and returns their unaligned output.
func (d *postgres) statementsWithin(ctx context.Context, limit time.Duration, sql ...string) (string, error) {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	script := readPassword + `exec psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1"`
	for i := range sql {
		script += fmt.Sprintf(` -c "${%d}"`, i+2)
	}
	var out bytes.Buffer
	err := d.r.run(ctx, script, append([]string{d.conninfo}, sql...), withPassword(d.password, nil), &limitedWriter{w: &out, n: 1 << 20})
	if err != nil {
		return "", fmt.Errorf("query database (%s): %w", d.src, err)
	}
	return strings.TrimSpace(out.String()), nil
}

// serverInfo returns the server version and the database size in bytes.
func (d *postgres) serverInfo(ctx context.Context) (version string, size int64, err error) {
	// Asked from the maintenance database where it can be: a session on
	// the database itself outlives its client for a moment, and the copy
	// plan that follows would count it as a node still connected.
	out, err := d.on(adminDB).query(ctx, fmt.Sprintf("SELECT current_setting('server_version') || '|' || pg_database_size(%s)", sqlLiteral(d.dbname)))
	if err != nil {
		out, err = d.query(ctx, "SELECT current_setting('server_version') || '|' || pg_database_size(current_database())")
	}
	if err != nil {
		return "", 0, err
	}
	v, s, ok := strings.Cut(out, "|")
	if !ok {
		return "", 0, fmt.Errorf("query database (%s): unexpected answer %q", d.src, out)
	}
	_, err = fmt.Sscan(s, &size)
	return v, size, err
}

// dump streams pg_dump -Fc of the database to w.
func (d *postgres) dump(ctx context.Context, w io.Writer) error {
	args := []string{d.conninfo}
	for _, x := range d.exclude {
		// A pattern to pg_dump: double quotes make it one exact name.
		args = append(args, `--exclude-schema="`+x+`"`)
	}
	args = append(args, "-Z", strconv.Itoa(max(d.level, 1)))
	err := d.r.run(ctx, readPassword+`c=$1; shift; exec pg_dump -Fc -d "$c" "$@"`, args, withPassword(d.password, nil), w)
	if err != nil {
		return fmt.Errorf("pg_dump (%s, on %s): %w", d.src, d.r.where(), err)
	}
	return nil
}

// check reads a custom-format dump whole from r, as a restore would
// (every data block decompressed), without touching any database: a
// truncated or damaged dump fails here. pg_restore --list alone would read
// only the table of contents.
func (d *postgres) check(ctx context.Context, r io.Reader) error {
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
c=$1; pre=$2; shift 2
failed=$(mktemp) || exit 1
{
  printf '%s\n' "$pre"
  if pg_restore --clean --if-exists "$@" -f -; then
    echo 'COMMIT;'
  else
    echo x > "$failed"
    # End a COPY the dump may have been cut in, then stop psql for sure.
    printf '\n\\.\n'
    echo "DO \$x\$ BEGIN RAISE EXCEPTION 'nocobot: pg_restore could not read the dump; nothing was changed'; END \$x\$;"
  fi
} | psql -X -q -v ON_ERROR_STOP=1 -o /dev/null -d "$c"
rc=$?
if [ -s "$failed" ]; then echo incomplete-dump; rc=4; fi
rm -f "$failed"
exit $rc`

// restorePreamble is the SQL sent before pg_restore's script; the schemas
// in keep (nocobot's own) are never dropped.
func restorePreamble(keep []string) string {
	lits := make([]string, 0, len(keep))
	for _, k := range keep {
		lits = append(lits, "'"+strings.ReplaceAll(k, "'", "''")+"'")
	}
	return strings.Replace(restorePreambleSQL, "{keep}", "ARRAY["+strings.Join(lits, ", ")+"]::name[]", 1)
}

const restorePreambleSQL = `SET client_min_messages = warning;
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
      AND nspname <> ALL ({keep})
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
func (d *postgres) restore(ctx context.Context, r io.Reader) error {
	var out bytes.Buffer
	args := []string{d.conninfo, restorePreamble(d.exclude)}
	for _, x := range d.exclude {
		args = append(args, "--exclude-schema="+x) // pg_restore takes a name
	}
	err := d.r.run(ctx, restoreScript, args, withPassword(d.password, r), &limitedWriter{w: &out, n: 64 << 10})
	if err != nil && strings.Contains(out.String(), "incomplete-dump") {
		return fmt.Errorf("restore database (%s): pg_restore could not read the whole dump; the transaction was rolled back, nothing was changed: %w", d.src, err)
	}
	if err != nil {
		return fmt.Errorf("restore database (%s, on %s): %w", d.src, d.r.where(), err)
	}
	return nil
}

// debianClientBin is the folder of the newest PostgreSQL client installed
// by Debian's packages, where PATH's psql is Debian's wrapper
// (postgresql-common's pg_wrapper, a Perl script that picks a client
// version and runs it), else "". The wrapper costs about a tenth of a
// second of Perl before every call on a busy host, and a backup inside
// the downtime makes several calls in a row; for a server on another
// host it picks the newest client too, which dumps every older server.
func debianClientBin() string {
	p, err := exec.LookPath("psql")
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(p); err != nil || filepath.Base(real) != "pg_wrapper" {
		return ""
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	best, bestV := "", 0
	for _, f := range found {
		bin := filepath.Dir(f)
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
		if err != nil || v <= bestV {
			continue
		}
		if _, err := os.Stat(filepath.Join(bin, "pg_dump")); err == nil {
			best, bestV = bin, v
		}
	}
	return best
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
