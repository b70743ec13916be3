package backup

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

func dbNameOf(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// giveDatabaseProperties gives the fixture's database what an operator
// may have set on it: another owner, an access list, settings for the
// database and for a role in it, a connection limit, a comment.
func giveDatabaseProperties(t *testing.T, dbURL string) string {
	t.Helper()
	name := dbNameOf(t, dbURL)
	admin := connect(t, testenv.PostgresURL(t))
	owner, reader := name+"_owner", name+"_reader"
	execSQL(t, admin, fmt.Sprintf(`CREATE ROLE %[2]s; CREATE ROLE %[3]s;
ALTER DATABASE %[1]s OWNER TO %[2]s;
REVOKE ALL ON DATABASE %[1]s FROM PUBLIC;
GRANT CONNECT ON DATABASE %[1]s TO %[3]s;
GRANT TEMP ON DATABASE %[1]s TO %[3]s WITH GRANT OPTION;
ALTER DATABASE %[1]s SET work_mem = '7MB';
ALTER DATABASE %[1]s SET search_path = "$user", public, audit;
ALTER DATABASE %[1]s SET app.tenant = 'it''s "ours"';
ALTER ROLE %[3]s IN DATABASE %[1]s SET statement_timeout = '5s';
ALTER DATABASE %[1]s CONNECTION LIMIT 50;
COMMENT ON DATABASE %[1]s IS 'NocoBase production';`, name, owner, reader))
	admin.Close(context.Background())
	return name
}

// dbProperties is what pg_database and pg_db_role_setting say about the
// database (not its oid, which a swap changes).
func dbProperties(t *testing.T, name string) snapshot {
	t.Helper()
	c := connect(t, testenv.PostgresURL(t))
	defer c.Close(context.Background())
	s := snapshot{}
	var row string
	err := c.QueryRow(context.Background(), `SELECT concat_ws(' | ', datdba::regrole::text, coalesce(datacl::text, 'default acl'), datconnlimit,
    datallowconn, datistemplate, pg_encoding_to_char(encoding), datcollate, datctype, shobj_description(oid, 'pg_database'))
  FROM pg_database WHERE datname = $1`, name).Scan(&row)
	if err != nil {
		t.Fatal(err)
	}
	s["pg_database"] = row
	rows, err := c.Query(context.Background(), `SELECT CASE WHEN setrole = 0 THEN 'all roles' ELSE setrole::regrole::text END, array_to_string(setconfig, ' ; ')
  FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)`, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var role, conf string
		if err := rows.Scan(&role, &conf); err != nil {
			t.Fatal(err)
		}
		s["pg_db_role_setting "+role] = conf
	}
	if len(s) != 3 {
		t.Fatalf("properties not set: %v", s)
	}
	return s
}

// A restore by swap (an in-server copy, a folder dump restored into a
// fresh database) and a restore in place keep the database's own
// properties: owner, access list, settings, connection limit, comment.
func TestRestoreKeepsDatabaseProperties(t *testing.T) {
	for _, kind := range []string{"copy", "folder dump", "stream dump"} {
		t.Run(kind, func(t *testing.T) {
			f := copyFixture(t, 2, 50)
			name := giveDatabaseProperties(t, f.dbURL)
			o := f.localOptions(t)
			o.NoCopy = kind != "copy"
			if kind == "stream dump" {
				o.DumpFormat = FormatStream
			}
			m, err := New(o, nil, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			before := dbProperties(t, name)
			dbBefore := dbSnapshot(t, f.dbURL)
			info := create(t, m, nil)
			if want := map[string]string{"copy": KindCopy}[kind]; want != "" && info.Kind != want {
				t.Fatalf("kind = %s", info.Kind)
			}
			migrateAndChange(t, f.dbURL)
			if err := m.Restore(context.Background(), info.ID, nil); err != nil {
				t.Fatal(err)
			}
			assertSame(t, "database properties", before, dbProperties(t, name))
			assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))
		})
	}
}

// A copy is planned only where the backup's user can give a swapped-in
// copy the database's settings: a superuser-only setting on the database
// makes a non-superuser's plan a dump, so that no rollback fails at the
// swap.
func TestCopyPlanNeedsSettingsTheUserCanSetAgain(t *testing.T) {
	f := copyFixture(t, 1, 10)
	name := dbNameOf(t, f.dbURL)
	role := name + "_nb"
	admin := connect(t, testenv.PostgresURL(t))
	execSQL(t, admin, "CREATE ROLE "+role+" LOGIN CREATEDB; ALTER DATABASE "+name+" OWNER TO "+role)
	u, _ := url.Parse(f.dbURL)
	u.User = url.User(role)
	o := f.localOptions(t)
	o.NoCopy, o.DBURL, o.CopyWhenSpaceUnknown = false, u.String(), true
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Plan(context.Background()); p.Kind != KindCopy {
		t.Fatalf("plan before the setting = %+v", p)
	}
	execSQL(t, admin, "ALTER DATABASE "+name+" SET log_min_duration_statement = 250")
	p := m.Plan(context.Background())
	t.Log(p.Reason)
	if p.Kind != KindDump || !strings.Contains(p.Reason, "superuser-only") {
		t.Errorf("plan with a superuser-only setting = %+v", p)
	}
}
