package backup

// MySQL and MariaDB, through their own client programs (there is no MySQL
// driver among the module's dependencies, and the dump tool must be the
// server's anyway).
//
// Credentials: the connection settings, password included, form a client
// option file that is written into a pipe, never to disk, and read by the
// tool as --defaults-extra-file=/dev/fd/3. The password is therefore on no
// command line (ps, docker inspect), in no environment (MYSQL_PWD is not
// used: every tool here reads option files) and in no file. In the local
// mode the tools run with a minimal environment, so nothing of the bot's
// own environment (such as the variable holding the database URL) reaches
// them.
//
// MySQL 8 and MariaDB differ in ways this file handles:
//   - Tool names: MariaDB 11 images ship only mariadb-dump and mariadb;
//     MySQL images only mysqldump and mysql. The script takes the first
//     one present, in the dialect's order.
//   - mysqldump 8 writes SET @@GLOBAL.GTID_PURGED when the server uses
//     GTIDs, which fails on restore into a server with its own GTID
//     history: --set-gtid-purged=OFF. When it dumps a server without
//     information_schema.COLUMN_STATISTICS (MariaDB, MySQL 5.7) it fails
//     unless --column-statistics=0. Both go into the option file with the
//     loose- prefix (for the mysql dialect only), so a MariaDB tool in
//     their place ignores them instead of failing.
//   - --no-tablespaces: MySQL 8.0.21+ needs the PROCESS privilege to dump
//     tablespaces, which NocoBase never creates; both tools know it.
//   - Authentication: MySQL 8's default plugin caching_sha2_password sends
//     the password over TCP without TLS only with the server's RSA key:
//     loose-get-server-public-key=1 (mysql dialect). MariaDB's client
//     library ships the caching_sha2_password plugin as well.
//   - MariaDB 10.11.9+ and 11.x dumps start with a "sandbox mode" line that
//     MySQL's client refuses: restore with the tools of the dialect that
//     dumped (the restore runs where the dump ran).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// mysql is one MySQL or MariaDB database reached through a runner.
type mysql struct {
	r       runner
	flavor  string // "mysql" or "mariadb"
	dbname  string
	src     string // for the manifest and messages: no secrets
	bin     string // local tools' folder (local mode)
	options string // the client option file, password included: never logged
	swapDir string // where a restore's swap keeps its record (mysql_swap_record.go)

	mu     sync.Mutex
	tables []string // base tables when the last dump started, for its check
}

var _ database = (*mysql)(nil)

func (d *mysql) dialect() string { return d.flavor }
func (d *mysql) name() string    { return d.dbname }
func (d *mysql) source() string  { return d.src }

// excluded is empty: a MySQL database has no schemas inside it to leave
// out.
func (d *mysql) excluded() []string { return nil }

// Tool names in the order tried, per dialect.
func (d *mysql) dumpTools() string {
	if d.flavor == "mysql" {
		return "mysqldump mariadb-dump"
	}
	return "mariadb-dump mysqldump"
}

func (d *mysql) clientTools() string {
	if d.flavor == "mysql" {
		return "mysql mariadb"
	}
	return "mariadb mysql"
}

func (d *mysql) checkTools() error {
	if _, ok := d.r.(mysqlLocalRunner); !ok {
		return nil
	}
	var errs []error
	for _, tools := range []string{d.dumpTools(), d.clientTools()} {
		var found bool
		for _, tool := range strings.Fields(tools) {
			if _, err := binPath(d.bin, tool); err == nil {
				found = true
				break
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("none of %s found (%s)", tools, orPath(d.bin)))
		}
	}
	return errors.Join(errs...)
}

func orPath(bin string) string {
	if bin == "" {
		return "PATH"
	}
	return bin
}

// optionQuote quotes an option file value: inside double quotes the tools
// undo \\ and \".
func optionQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// mysqlOptions builds the option file. It has no line breaks in values:
// they are refused (no real host, user or password holds one).
func mysqlOptions(flavor, user, password, host string, port int, socket string) (string, error) {
	for _, v := range []string{user, password, host, socket} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return "", errors.New("database connection settings must not contain line breaks")
		}
	}
	lines := []string{"[client]", "default-character-set=utf8mb4"}
	if user != "" {
		lines = append(lines, "user="+optionQuote(user))
	}
	if password != "" {
		lines = append(lines, "password="+optionQuote(password))
	}
	if host != "" {
		lines = append(lines, "host="+optionQuote(host))
	}
	if port != 0 {
		lines = append(lines, "port="+strconv.Itoa(port))
	}
	if socket != "" {
		lines = append(lines, "socket="+optionQuote(socket))
	}
	if flavor == "mysql" {
		lines = append(lines, "loose-get-server-public-key=1",
			"[mysqldump]", "loose-set-gtid-purged=OFF", "loose-column-statistics=0")
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// mysqlFromURL parses mysql://user:password@host:port/dbname (or
// mariadb://; ?socket=/path for a unix socket); the password moves out of
// the URL into the option file.
func mysqlFromURL(opts Options, flavor string) (*mysql, error) {
	u, err := url.Parse(opts.DBURL)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("database URL: want mysql://user:password@host:port/dbname")
	}
	password, _ := u.User.Password()
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return nil, errors.New("database URL: no database name in the path")
	}
	port := 0
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return nil, errors.New("database URL: bad port")
		}
	}
	host := u.Hostname()
	socket := u.Query().Get("socket")
	if host == "localhost" && socket == "" {
		// The tools read "localhost" as "the default unix socket".
		host = "127.0.0.1"
	}
	options, err := mysqlOptions(flavor, u.User.Username(), password, host, port, socket)
	if err != nil {
		return nil, err
	}
	where := u.Host
	if socket != "" {
		where = socket
	}
	return &mysql{
		r:       mysqlLocalRunner{bin: opts.MySQLBin},
		flavor:  flavor,
		dbname:  name,
		src:     "url " + where + "/" + name,
		bin:     opts.MySQLBin,
		options: options,
	}, nil
}

// mysqlInContainer runs the tools inside the database container: over its
// default unix socket unless DBHost/DBPort are set.
func mysqlInContainer(c Containers, opts Options, flavor string) (*mysql, error) {
	options, err := mysqlOptions(flavor, opts.DBUser, opts.DBPassword, opts.DBHost, opts.DBPort, "")
	if err != nil {
		return nil, err
	}
	return &mysql{
		r:       containerRunner{containers: c, container: opts.DBContainer},
		flavor:  flavor,
		dbname:  opts.DBName,
		src:     "container " + opts.DBContainer + " database " + opts.DBName,
		options: options,
	}, nil
}

// mysqlScript runs the first tool of $1 (space-separated names) that is
// installed with the rest of the arguments, the option file arriving on
// fd 3 through a pipe. The first line of stdin is the option file's line
// count, then its lines; the rest of stdin is the tool's.
const mysqlScript = `IFS= read -r n || exit 90
cnf=
while [ "$n" -gt 0 ]; do IFS= read -r l || exit 90; cnf="$cnf$l
"; n=$((n-1)); done
t=
for c in $1; do t=$(command -v "$c") && break; t=; done
[ -n "$t" ] || { echo "none of $1 is installed" >&2; exit 127; }
shift
{ printf '%s' "$cnf" | "$t" --defaults-extra-file=/dev/fd/3 "$@" 3<&0 0<&4 4<&-; } 4<&0`

// run runs a tool (one of tools) with args, stdin and stdout.
func (d *mysql) run(ctx context.Context, tools string, args []string, stdin io.Reader, stdout io.Writer) error {
	head := strconv.Itoa(strings.Count(d.options, "\n")) + "\n" + d.options
	var in io.Reader = strings.NewReader(head)
	if stdin != nil {
		in = io.MultiReader(in, stdin)
	}
	return d.r.run(ctx, mysqlScript, append([]string{tools}, args...), in, stdout)
}

// query runs SQL with the client in database db ("" for none) and returns
// its rows, tab-separated fields (the client's batch mode escapes tabs,
// newlines and backslashes in values).
func (d *mysql) query(ctx context.Context, db, sql string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	args := []string{"-N", "-B", "-e", sql}
	if db != "" {
		args = append(args, "--", db)
	}
	if err := d.run(ctx, d.clientTools(), args, nil, &limitedWriter{w: &out, n: 16 << 20}); err != nil {
		return nil, mysqlError(err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

// mysqlError keeps the server's message, on one line, and drops the
// shell's noise and the tools' warnings.
func mysqlError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := err.Error()
	if i := strings.Index(msg, "ERROR "); i >= 0 {
		msg = msg[i:]
	}
	var keep []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Warning: ") {
			keep = append(keep, l)
		}
	}
	return errors.New(strings.Join(keep, "; "))
}

// myString quotes a string literal (the session never uses
// NO_BACKSLASH_ESCAPES: the client's own defaults apply).
func myString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`).Replace(s) + "'"
}

// myIdent quotes an identifier.
func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// unescapeBatch undoes the client's batch-mode escaping of a value.
func unescapeBatch(s string) string {
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n", `\0`, "\x00", `\\`, `\`).Replace(s)
}

// serverInfo returns the server version and the database's size (data and
// indexes: an upper bound of the dump's size without its text overhead).
// A missing database or a rejected password fails here with the server's
// message.
func (d *mysql) serverInfo(ctx context.Context) (string, int64, error) {
	rows, err := d.query(ctx, "", "SELECT VERSION(), (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = "+myString(d.dbname)+
		"), (SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = "+myString(d.dbname)+")")
	if err != nil {
		return "", 0, fmt.Errorf("query database (%s): %w", d.src, err)
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return "", 0, fmt.Errorf("query database (%s): unexpected answer", d.src)
	}
	if rows[0][1] != "1" {
		return "", 0, fmt.Errorf("database %q does not exist or this user may not see it (%s)", d.dbname, d.src)
	}
	size, err := strconv.ParseInt(rows[0][2], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("query database (%s): size %q", d.src, rows[0][2])
	}
	return rows[0][0], size, nil
}

// dumpHeader is the first line nocobot writes into a dump, a comment to
// the client: what restore needs that the dump of one database does not
// say (its default character set and collation, which a dump carries only
// with CREATE DATABASE), and the tables the check expects.
type dumpHeader struct {
	Format    int      `json:"format"`
	Database  string   `json:"database"`
	Charset   string   `json:"charset"`
	Collation string   `json:"collation"`
	Tables    []string `json:"tables"`
}

const headerPrefix = "-- nocobot-mysql "

// dumpArgs are the dump's options: one consistent snapshot (InnoDB) with
// routines, triggers and events, binary columns as hex (a dump stays
// valid text whatever the connection's character set), tables streamed
// row by row (--quick) and no dump date (two dumps of equal data are equal
// but for the header).
var dumpArgs = []string{
	"--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob",
	"--no-tablespaces", "--add-drop-table", "--max-allowed-packet=1G", "--skip-dump-date",
}

// dump streams the header and the dump tool's output to w. A swap that an
// interrupted restore left is settled first: dumped as it is, the database
// would lack the views, triggers, routines and events the swap dropped.
func (d *mysql) dump(ctx context.Context, w io.Writer) error {
	if rec, err := readSwapRecord(d.swapDir); err != nil || rec != nil {
		if err == nil {
			err = d.settle(ctx, d.dbname, helperName(d.dbname, "restore"), helperName(d.dbname, "old"))
		}
		if err != nil {
			return fmt.Errorf("dump (%s): %w", d.src, err)
		}
	}
	h, err := d.header(ctx)
	if err != nil {
		return fmt.Errorf("dump (%s): %w", d.src, err)
	}
	d.mu.Lock()
	d.tables = h.Tables
	d.mu.Unlock()
	line, err := marshalHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, line); err != nil {
		return err
	}
	sink := &firstErrWriter{w: w}
	err = d.run(ctx, d.dumpTools(), append(append([]string{}, dumpArgs...), "--", d.dbname), nil, sink)
	if sink.err != nil {
		// The tool then fails on a broken pipe; the cause is here (a full
		// disk, a check that gave up).
		return fmt.Errorf("write the dump: %w", sink.err)
	}
	if err != nil {
		return fmt.Errorf("%s dump (%s, on %s): %w", d.flavor, d.src, d.r.where(), mysqlError(err))
	}
	return nil
}

// firstErrWriter remembers the first error of w.
type firstErrWriter struct {
	w   io.Writer
	err error
}

func (f *firstErrWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil && f.err == nil {
		f.err = err
	}
	return n, err
}

// header reads the database's character set, collation and base tables.
func (d *mysql) header(ctx context.Context) (dumpHeader, error) {
	rows, err := d.query(ctx, "", "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata WHERE schema_name = "+myString(d.dbname))
	if err != nil {
		return dumpHeader{}, err
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return dumpHeader{}, fmt.Errorf("database %q does not exist or this user may not see it", d.dbname)
	}
	h := dumpHeader{Format: 1, Database: d.dbname, Charset: rows[0][0], Collation: rows[0][1], Tables: []string{}}
	if h.Tables, err = d.tableNames(ctx, d.dbname, "BASE TABLE"); err != nil {
		return dumpHeader{}, err
	}
	return h, nil
}

// tableNames lists the tables (or views) of db, sorted.
func (d *mysql) tableNames(ctx context.Context, db, kind string) ([]string, error) {
	rows, err := d.query(ctx, "", "SELECT table_name FROM information_schema.tables WHERE table_schema = "+myString(db)+
		" AND table_type = "+myString(kind)+" ORDER BY table_name")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(rows))
	for _, r := range rows {
		names = append(names, unescapeBatch(r[0]))
	}
	return names, nil
}

// mysqlLocalRunner runs this host's tools (bin, else PATH) with a minimal
// environment: the tools read MYSQL_PWD, MYSQL_HOST and the like, and the
// bot's own environment holds secrets that they do not need.
type mysqlLocalRunner struct {
	bin string
}

func (l mysqlLocalRunner) where() string { return "this host" }

func (l mysqlLocalRunner) run(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) error {
	path := "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
	if l.bin != "" {
		path = l.bin + string(os.PathListSeparator) + path
	}
	// No HOME: a ~/.my.cnf of the bot's user must not change the
	// connection.
	env := []string{"PATH=" + path, "LC_ALL=C.UTF-8", "TMPDIR=" + os.TempDir()}
	stderr, err := runShell(ctx, env, script, args, stdin, stdout)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if msg := strings.TrimSpace(stderr); msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// newMySQL returns the MySQL or MariaDB database the options name.
func newMySQL(opts Options, containers Containers) (database, error) {
	d, err := newMySQLIn(opts, containers)
	if err != nil {
		return nil, err
	}
	d.swapDir = mysqlSwapDir(opts.Dest, d.dbname, d.src)
	return d, nil
}

func newMySQLIn(opts Options, containers Containers) (*mysql, error) {
	switch {
	case opts.DBContainer != "" && opts.DBURL != "":
		return nil, errors.New("set either a database container or a database URL, not both")
	case opts.DBContainer != "":
		if containers == nil {
			return nil, errors.New("the database container mode needs the Docker adapter")
		}
		if opts.DBName == "" {
			return nil, errors.New("no database name")
		}
		return mysqlInContainer(containers, opts, opts.Dialect)
	case opts.DBURL != "":
		return mysqlFromURL(opts, opts.Dialect)
	default:
		return nil, errors.New("no database: set a database container or a database URL")
	}
}
