package backup

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// The plan takes an in-server copy only where the server's filesystem
// has room for it with a tenth left: a database whose tablespace is
// nearly full is dumped, and the copy is not even tried.
func TestCopyPlanNeedsRoomOnTheServer(t *testing.T) {
	f := copyFixture(t, 1, 10)
	m := copyManager(t, f)
	ctx := context.Background()
	if p := m.Plan(ctx); p.Kind != KindCopy || !strings.Contains(p.Reason, "free on the server") {
		t.Errorf("plan with room = %+v", p)
	}

	// A tablespace on a 16 MB filesystem, holding a database of ~11 MB.
	parent := testenv.TempDir(t)
	if err := os.Chmod(parent, 0o755); err != nil { // the server's user must get through
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "ts")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user to own the tablespace")
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	admin := connect(t, testenv.PostgresURL(t))
	name := dbNameOf(t, f.dbURL) + "_ts"
	execSQL(t, admin, "CREATE TABLESPACE "+name+" LOCATION '"+dir+"'")
	t.Cleanup(func() { execSQL(t, connect(t, testenv.PostgresURL(t)), "DROP TABLESPACE "+name) })
	execSQL(t, admin, "CREATE DATABASE "+name+" TABLESPACE "+name)
	t.Cleanup(func() {
		a := connect(t, testenv.PostgresURL(t))
		for _, d := range databases(t, name+`%`) {
			execSQL(t, a, "DROP DATABASE "+sqlIdent(d)+" WITH (FORCE)")
		}
	})
	u, _ := url.Parse(f.dbURL)
	u.Path = "/" + name
	c := connect(t, u.String())
	execSQL(t, c, `CREATE TABLE blobs (b bytea); INSERT INTO blobs SELECT decode(repeat(md5(i::text), 64), 'hex') FROM generate_series(1, 3000) i; CHECKPOINT`)
	c.Close(ctx)

	o := f.localOptions(t)
	o.NoCopy, o.DBURL = false, u.String()
	m2, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	p := m2.Plan(ctx)
	t.Log(p.Reason)
	if p.Kind != KindDump || !strings.Contains(p.Reason, "no room on the database server") || !strings.Contains(p.Reason, dir) {
		t.Errorf("plan on a nearly full server = %+v", p)
	}
	progress := &lines{}
	info := create(t, m2, progress)
	if info.Kind != KindDump || strings.Contains(progress.String(), "in-server copy failed") {
		t.Errorf("kind %s\n%s", info.Kind, progress)
	}
}

// Where the server does not let nocobot see its free space (a user that
// may neither read data_directory nor run programs on the server), the
// plan says so and dumps, unless copy_when_space_unknown says to copy.
func TestCopyPlanWhenServerSpaceIsUnknown(t *testing.T) {
	f := copyFixture(t, 1, 10)
	name := dbNameOf(t, f.dbURL)
	role := name + "_nb"
	admin := connect(t, testenv.PostgresURL(t))
	execSQL(t, admin, "CREATE ROLE "+role+" LOGIN CREATEDB; ALTER DATABASE "+name+" OWNER TO "+role)
	u, _ := url.Parse(f.dbURL)
	u.User = url.User(role)
	o := f.localOptions(t)
	o.NoCopy, o.DBURL = false, u.String()
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	p := m.Plan(context.Background())
	t.Log(p.Reason)
	if p.Kind != KindDump || !strings.Contains(p.Reason, "free space on the database server cannot be seen") || !strings.Contains(p.Reason, "copy_when_space_unknown") {
		t.Errorf("plan = %+v", p)
	}
	o.CopyWhenSpaceUnknown = true
	m, err = New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Plan(context.Background()); p.Kind != KindCopy || !strings.Contains(p.Reason, "copy_when_space_unknown") {
		t.Errorf("plan with copy_when_space_unknown = %+v", p)
	}
}

// In the container mode, df runs where the database does.
func TestServerRoomInTheDatabaseContainer(t *testing.T) {
	f := copyFixture(t, 1, 10)
	c := connect(t, f.dbURL)
	var host string
	var port int
	if err := c.QueryRow(context.Background(), "SELECT inet_server_addr()::text, inet_server_port()").Scan(&host, &port); err != nil {
		t.Fatal(err)
	}
	lc := &localContainers{}
	db := postgresInContainer(lc, Options{DBContainer: "db", DBName: c.Config().Database, DBUser: c.Config().User,
		DBHost: strings.TrimSuffix(host, "/32"), DBPort: port})
	r, err := db.serverRoom(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.dir == "" || r.total <= 0 || r.free <= 0 || r.dbSize <= 0 || !strings.Contains(strings.Join(lc.execs, "\n"), "db: sh -c") {
		t.Errorf("room = %+v, execs %v", r, lc.execs)
	}
}
