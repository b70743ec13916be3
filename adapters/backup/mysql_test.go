package backup

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// mysqlFixture is one test's MariaDB database, storage folder and backup
// destination.
type mysqlFixture struct {
	db      string
	port    int
	storage string
	dest    string
}

func newMySQLFixture(t *testing.T, shape mysqlShape) mysqlFixture {
	t.Helper()
	u, err := url.Parse(testenv.MySQLURL(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	f := mysqlFixture{db: testenv.NewMySQLDatabase(t), port: port,
		storage: filepath.Join(testenv.TempDir(t), "storage"), dest: filepath.Join(testenv.TempDir(t), "backups")}
	mysqlCreateShape(t, f.db, shape)
	nocobaseLikeStorage(t, f.storage)
	return f
}

// url is the local mode's URL for user (root when empty).
func (f mysqlFixture) url(user, password string) string {
	if user == "" {
		user = "root"
	}
	u := url.URL{Scheme: "mysql", Host: fmt.Sprintf("127.0.0.1:%d", f.port), Path: "/" + f.db}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

func (f mysqlFixture) localOptions(t *testing.T, user, password string) Options {
	return Options{
		Cluster: "prod", Dest: f.dest, Dialect: "mariadb", DBURL: f.url(user, password), MySQLBin: testenv.MySQLBin(t),
		StorageHostPath: f.storage, ProgressEvery: 50 * time.Millisecond,
	}
}

// mysqlMigrateAndChange is what an upgrade and users do after a backup:
// rows changed, a table dropped and one added, a column added, triggers,
// routines and events replaced, the database's collation and a counter
// changed.
func mysqlMigrateAndChange(t *testing.T, db string) {
	t.Helper()
	testenv.MySQLExec(t, db, `
INSERT INTO users (email, nickname, roles, `+"`createdAt`"+`) VALUES ('late@example.com', 'late 🐢', '["member"]', NOW());
UPDATE attachments SET meta = JSON_SET(meta, '$.edited', true), data = UNHEX('DEADBEEF') WHERE id % 3 = 0;
DELETE FROM t_001 WHERE id % 2 = 0;
DROP TABLE t_002;
ALTER TABLE users ADD COLUMN phone varchar(32) DEFAULT '000';
CREATE TABLE `+"`newPluginTable`"+` (id bigint AUTO_INCREMENT PRIMARY KEY, v json);
INSERT INTO `+"`newPluginTable`"+` (v) VALUES ('{"a":1}');
INSERT INTO migrations (name) VALUES ('20250101-upgrade-to-2.3');
ALTER TABLE `+"`legacyNotes`"+` AUTO_INCREMENT = 90000;
DROP TRIGGER users_audit;
CREATE TRIGGER users_audit2 BEFORE DELETE ON users FOR EACH ROW SET @x = 1;
DROP FUNCTION `+"`displayName`"+`;
CREATE FUNCTION `+"`displayName`"+`(e varchar(255)) RETURNS varchar(300) DETERMINISTIC RETURN CONCAT('changed:', e);
CREATE PROCEDURE extra() SELECT 1;
DROP EVENT `+"`purgeAudit`"+`;
CREATE VIEW `+"`extraView`"+` AS SELECT 1 AS one;
ALTER DATABASE `+"`"+db+"`"+` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
`)
}

func mysqlCreate(t *testing.T, m *Manager, progress *lines) (ports.BackupInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if progress == nil {
		progress = &lines{}
	}
	return m.Create(ctx, ports.BackupRequest{Cluster: "prod", Version: "2.2.15", Image: "nocobase/nocobase:2.2.15", RunID: "run-1"}, progress.add)
}

// helperDatabases lists databases a restore of db left behind.
func helperDatabases(t *testing.T, db string) string {
	return testenv.MySQLExec(t, "", "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '"+db+"\\_nocobot\\_%'")
}

// mysqlRoundTrip backs up, changes everything, restores and compares
// what a user would compare.
func mysqlRoundTrip(t *testing.T, opts Options, containers Containers, f mysqlFixture, mtimePrec time.Duration) {
	t.Helper()
	ctx := context.Background()
	m, err := New(opts, containers, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
	before := mysqlSnapshot(t, f.db)
	if !strings.Contains(before["trigger users_audit"], "PIPES_AS_CONCAT") || !strings.Contains(before["event purgeAudit"], shapeTimeZone) {
		t.Fatalf("the shape lacks its sql_mode or time zone: %q, %q", before["trigger users_audit"], before["event purgeAudit"])
	}
	if before["call displayName"] != "user:x" {
		t.Fatalf("displayName = %q", before["call displayName"])
	}
	filesBefore := fileSnapshotAt(t, f.storage, DefaultExcludes, mtimePrec)

	progress := &lines{}
	info, err := mysqlCreate(t, m, progress)
	if err != nil {
		t.Fatalf("create: %v\nprogress:\n%s", err, progress)
	}
	man := readManifest(t, f.dest, info.ID)
	if man.Database.Dialect != "mariadb" || man.Database.Name != f.db || !strings.Contains(man.Database.ServerVersion, "MariaDB") ||
		len(man.Parts) != 2 || !man.Verified {
		t.Errorf("manifest = %+v", man)
	}
	dump, err := os.ReadFile(filepath.Join(f.dest, info.ID, partDatabase))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(dump), headerPrefix) || !strings.Contains(string(dump), "\n-- Dump completed") {
		t.Errorf("dump starts %q", dump[:min(200, len(dump))])
	}
	for _, secret := range []string{"s3cr3t"} {
		if strings.Contains(string(dump), secret) || strings.Contains(progress.String(), secret) {
			t.Errorf("the password is in the dump or the progress")
		}
	}

	mysqlMigrateAndChange(t, f.db)
	changeStorage(t, f.storage)
	if d := before.diff(mysqlSnapshot(t, f.db)); len(d) < 8 {
		t.Fatalf("the changes did not change the database enough: %v", d)
	}

	restoreProgress := &lines{}
	start := time.Now()
	if err := m.Restore(ctx, info.ID, restoreProgress.add); err != nil {
		t.Fatalf("restore: %v\nprogress:\n%s", err, restoreProgress)
	}
	t.Logf("restore took %s", time.Since(start))
	after := mysqlSnapshot(t, f.db)
	assertSame(t, "database", before, after)
	assertSame(t, "storage", filesBefore, fileSnapshotAt(t, f.storage, DefaultExcludes, mtimePrec))
	if left := helperDatabases(t, f.db); left != "" {
		t.Errorf("the restore left databases behind: %s", left)
	}
	// Emoji and four-byte characters came back as they were.
	if got := testenv.MySQLExec(t, f.db, "SELECT nickname FROM users WHERE email = 'cjk@example.com'"); got != "𠜎𠜱𠝹 ideographs 𝒜𝓁𝓅𝒽𝒶" {
		t.Errorf("nickname = %q", got)
	}
}

// TestMySQLRoundTripLocal is the managed-database deployment: this host's
// mariadb-dump and mariadb against a URL, a NocoBase-shaped database of
// hundreds of tables.
func TestMySQLRoundTripLocal(t *testing.T) {
	f := newMySQLFixture(t, mysqlShape{Small: 300, SmallRows: 3, Big: 2, BigRows: 3000, TextBytes: 512})
	mysqlRoundTrip(t, f.localOptions(t, "", ""), nil, f, 0)
}

// TestMySQLRoundTripDocker is the compose deployment: the tools run inside
// the database container (docker exec), as a user with a password, and
// the storage is copied out of and into a node container.
func TestMySQLRoundTripDocker(t *testing.T) {
	e, host := engine(t)
	f := newMySQLFixture(t, mysqlShape{Small: 50, SmallRows: 3, Big: 1, BigRows: 500, TextBytes: 256})
	const password = `s3cr3t "q" 'x' \ #;`
	user := testenv.NewMySQLAdmin(t, password)
	db := runDBContainer(t, host)
	node := testenv.RunNode(t, host, testenv.NodeSpec{
		Image:  testenv.NodeImage(t, host, "2.2.15"),
		Mounts: []string{f.storage + ":/app/nocobase/storage"},
	})
	opts := Options{
		Cluster: "prod", Dest: f.dest, Dialect: "mariadb",
		DBContainer: db, DBName: f.db, DBUser: user, DBPassword: password, DBHost: "127.0.0.1", DBPort: f.port,
		StorageContainer: node.Name, ProgressEvery: 50 * time.Millisecond,
	}
	mysqlRoundTrip(t, opts, e, f, time.Second)
	// The password was never on a command line: docker keeps every exec's
	// command in the container's record.
	out := testenv.Docker(t, host, "inspect", "--format", "{{json .ExecIDs}} {{json .Config}}", db)
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("the password is in the container's record: %s", out)
	}
}

// TestMySQLFaults: each fault is a clear error, and no backup folder is
// left that could pass for a backup.
func TestMySQLFaults(t *testing.T) {
	ctx := context.Background()
	f := newMySQLFixture(t, mysqlShape{Small: 5, SmallRows: 3})
	noBackups := func(t *testing.T, dest string) {
		t.Helper()
		entries, _ := os.ReadDir(dest)
		for _, e := range entries {
			t.Errorf("left in the destination: %s", e.Name())
		}
	}

	t.Run("wrong password", func(t *testing.T) {
		user := testenv.NewMySQLUser(t, f.db, "right-password")
		opts := f.localOptions(t, user, "wrong-password")
		opts.Dest = filepath.Join(testenv.TempDir(t), "b")
		m, err := New(opts, nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		err = m.Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "Access denied") || strings.Contains(err.Error(), "wrong-password") {
			t.Errorf("check: %v", err)
		}
		_, err = mysqlCreate(t, m, nil)
		if err == nil || !strings.Contains(err.Error(), "Access denied") || strings.Contains(err.Error(), "wrong-password") {
			t.Errorf("create: %v", err)
		}
		noBackups(t, opts.Dest)
	})

	t.Run("restore not possible", func(t *testing.T) {
		// A user with rights on its own database only can back up, but a
		// restore could not create its working database: preflight says so.
		user := testenv.NewMySQLUser(t, f.db, "pw")
		opts := f.localOptions(t, user, "pw")
		opts.Dest = filepath.Join(testenv.TempDir(t), "b")
		m, err := New(opts, nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Check(ctx); err == nil || !strings.Contains(err.Error(), "could not create its working database (GRANT ALL ON") {
			t.Errorf("check: %v", err)
		}
		// An earlier restore's leftover old copy that holds tables and no
		// record explains stops the next one.
		root, err := New(f.localOptions(t, "", ""), nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		testenv.MySQLExec(t, "", "CREATE DATABASE `"+f.db+"_nocobot_old`; CREATE TABLE `"+f.db+"_nocobot_old`.users (id int)")
		defer testenv.MySQLExec(t, "", "DROP DATABASE `"+f.db+"_nocobot_old`")
		if err := root.Check(ctx); err == nil || !strings.Contains(err.Error(), "left by an earlier restore") {
			t.Errorf("check: %v", err)
		}
	})

	t.Run("missing database", func(t *testing.T) {
		opts := f.localOptions(t, "", "")
		opts.DBURL = strings.Replace(opts.DBURL, "/"+f.db, "/no_such_db", 1)
		opts.Dest = filepath.Join(testenv.TempDir(t), "b")
		m, err := New(opts, nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Check(ctx); err == nil || !strings.Contains(err.Error(), `"no_such_db" does not exist`) {
			t.Errorf("check: %v", err)
		}
		if _, err := mysqlCreate(t, m, nil); err == nil || !strings.Contains(err.Error(), `"no_such_db" does not exist`) {
			t.Errorf("create: %v", err)
		}
		noBackups(t, opts.Dest)
	})

	t.Run("full destination", func(t *testing.T) {
		dest := smallDest(t, "1m")
		big := newMySQLFixture(t, mysqlShape{Big: 1, BigRows: 2000, TextBytes: 1024})
		opts := big.localOptions(t, "", "")
		opts.Dest = dest
		m, err := New(opts, nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		// The room check before the dump may say so already; else the
		// write fails on the way (the dump is larger than the estimate).
		_, err = mysqlCreate(t, m, nil)
		if err == nil || !strings.Contains(err.Error(), "no space left") {
			t.Errorf("create: %v", err)
		}
		t.Logf("error: %v", err)
		noBackups(t, dest)
	})

	t.Run("server goes away mid-dump", func(t *testing.T) {
		srv := testenv.StartMySQLServer(t)
		srv.Exec(t, "", "CREATE DATABASE away CHARACTER SET utf8mb4")
		srv.Exec(t, "away", mysqlNocoBaseSQL(mysqlShape{Small: 3, SmallRows: 2, Big: 1, BigRows: 60000, TextBytes: 2048}))
		dest := filepath.Join(testenv.TempDir(t), "b")
		opts := Options{
			Cluster: "prod", Dest: dest, Dialect: "mariadb", DBURL: fmt.Sprintf("mysql://root@127.0.0.1:%d/away", srv.Port),
			MySQLBin: testenv.MySQLBin(t), StorageHostPath: f.storage, ProgressEvery: 20 * time.Millisecond,
		}
		m, err := New(opts, nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		killed := make(chan struct{})
		progress := func(s string) {
			// Once the dump is well under way (MiB written).
			if strings.HasPrefix(s, "database: ") && strings.Contains(s, "MiB so far") {
				select {
				case <-killed:
				default:
					close(killed)
					srv.Kill()
				}
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err = m.Create(cctx, ports.BackupRequest{Cluster: "prod"}, progress)
		select {
		case <-killed:
		default:
			t.Fatal("the dump ended before the server could be killed: make the data larger")
		}
		if err == nil || !strings.Contains(err.Error(), "Lost connection") || !strings.Contains(err.Error(), "mariadb dump") {
			t.Errorf("create: %v", err)
		}
		t.Logf("error: %v", err)
		noBackups(t, dest)
	})
}

// TestMySQLRestoreAllOrNothing: a dump that breaks in the middle of the
// load, and one cut short, leave the database exactly as it was.
func TestMySQLRestoreAllOrNothing(t *testing.T) {
	ctx := context.Background()
	f := newMySQLFixture(t, mysqlShape{Small: 20, SmallRows: 5, Big: 1, BigRows: 200, TextBytes: 128})
	m, err := New(f.localOptions(t, "", ""), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mysqlCreate(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile(filepath.Join(f.dest, info.ID, partDatabase))
	if err != nil {
		t.Fatal(err)
	}
	mysqlMigrateAndChange(t, f.db)
	changed := mysqlSnapshot(t, f.db)
	d := m.db.(*mysql)

	s := string(dump)
	i := strings.Index(s, "CREATE TABLE `t_010`")
	for name, bad := range map[string]string{
		"cut short":           s[:len(s)*2/3],
		"error in the middle": s[:i] + "INSERT INTO no_such_table VALUES (1);\n" + s[i:],
		"no header":           s[strings.Index(s, "\n")+1:],
	} {
		t.Run(name, func(t *testing.T) {
			err := d.restore(ctx, strings.NewReader(bad))
			if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("restore: %v", err)
			}
			t.Logf("error: %v", err)
			assertSame(t, "database", changed, mysqlSnapshot(t, f.db))
			if left := helperDatabases(t, f.db); left != "" {
				t.Errorf("left behind: %s", left)
			}
		})
	}
}

// TestMySQLDialectFromNodes: with no dialect configured, the container
// mode asks the nodes (their DB_DIALECT) on first use, not in New.
func TestMySQLDialectFromNodes(t *testing.T) {
	f := newMySQLFixture(t, mysqlShape{Small: 3, SmallRows: 2})
	asked := 0
	opts := Options{
		Cluster: "prod", Dest: f.dest, DBContainer: "db", DBName: f.db, DBUser: "root", DBHost: "127.0.0.1", DBPort: f.port,
		StorageHostPath: f.storage,
		DialectFrom:     func(context.Context) (string, error) { asked++; return "mariadb", nil },
	}
	m, err := New(opts, &localContainers{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if asked != 0 {
		t.Fatal("New asked the nodes")
	}
	info, err := mysqlCreate(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if man := readManifest(t, f.dest, info.ID); man.Database.Dialect != "mariadb" || asked != 1 {
		t.Errorf("dialect %q, asked %d times", man.Database.Dialect, asked)
	}
	if err := m.Restore(context.Background(), info.ID, nil); err != nil {
		t.Fatal(err)
	}

	opts.DialectFrom = func(context.Context) (string, error) { return "oracle", nil }
	m, err = New(opts, &localContainers{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "DB_DIALECT=oracle") {
		t.Errorf("check: %v", err)
	}
}

// TestMySQLURL: the password leaves the URL for the option file and shows
// nowhere else; bad URLs are refused without echoing them.
func TestMySQLURL(t *testing.T) {
	db, err := mysqlFromURL(Options{DBURL: "mysql://nocobase:p%40ss%22w@db.example:3307/nocobase", MySQLBin: "/opt/bin"}, "mysql")
	if err != nil {
		t.Fatal(err)
	}
	if db.dbname != "nocobase" || db.src != "url db.example:3307/nocobase" || strings.Contains(db.src, "p@ss") {
		t.Errorf("db = %+v", db)
	}
	for _, want := range []string{`user="nocobase"`, `password="p@ss\"w"`, `host="db.example"`, "port=3307", "loose-set-gtid-purged=OFF"} {
		if !strings.Contains(db.options, want+"\n") {
			t.Errorf("option file lacks %s:\n%s", want, db.options)
		}
	}
	sock, err := mysqlFromURL(Options{DBURL: "mariadb://root@localhost/app?socket=/run/mysqld/mysqld.sock"}, "mariadb")
	if err != nil || !strings.Contains(sock.options, `socket="/run/mysqld/mysqld.sock"`) || strings.Contains(sock.options, "gtid") {
		t.Errorf("socket URL: %v\n%s", err, sock.options)
	}
	for _, bad := range []string{"mysql://u:secret@h/", "mysql://u:secret@h:99999/db", "postgres://u:secret@h/db"} {
		if _, err := mysqlFromURL(Options{DBURL: bad}, "mysql"); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := mysqlInContainer(&localContainers{}, Options{DBContainer: "db", DBName: "x", DBPassword: "a\nb"}, "mysql"); err == nil {
		t.Error("a password with a line break was accepted")
	}
}

// TestDialectFromNodesKeepsPostgresAbilities: a PostgreSQL cluster whose
// dialect comes from the nodes plans the same kind of backup (in-server
// copy or dump) as one configured as postgres.
func TestDialectFromNodesKeepsPostgresAbilities(t *testing.T) {
	dbURL := testenv.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	opts := Options{
		Cluster: "prod", Dest: filepath.Join(testenv.TempDir(t), "b"), DBContainer: "db", DBName: strings.TrimPrefix(u.Path, "/"),
		DBUser: "postgres", DBHost: "127.0.0.1", DBPort: port, StorageHostPath: testenv.TempDir(t),
	}
	explicit := opts
	explicit.Dialect = "postgres"
	want, err := New(explicit, &localContainers{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.DialectFrom = func(context.Context) (string, error) { return "postgres", nil }
	got, err := New(opts, &localContainers{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if w, g := want.Plan(ctx), got.Plan(ctx); w != g {
		t.Errorf("plan from the nodes' dialect %+v, configured %+v", g, w)
	}
}
