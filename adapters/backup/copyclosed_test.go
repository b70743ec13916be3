package backup

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nocobot/nocobot/internal/testenv"
)

// Maintenance on the in-server copy (VACUUM FULL, FREEZE, ANALYZE,
// REINDEX, as a DBA or an anti-wraparound vacuum does it) does not make
// a rollback refuse the copy; a change of its data cannot happen (the
// copy accepts no connection), and a copy someone opened again is
// refused.
func TestCopyMaintenanceDoesNotRefuseARollback(t *testing.T) {
	f := copyFixture(t, 4, 300)
	m := copyManager(t, f)
	ctx := context.Background()
	dbBefore := dbSnapshot(t, f.dbURL)
	info := create(t, m, nil)
	man := readManifest(t, f.dest, info.ID)
	admin := connect(t, testenv.PostgresURL(t))
	copyURL := strings.Replace(f.dbURL, "/"+dbNameOf(t, f.dbURL), "/"+man.Database.Copy, 1)

	// A change of the copy's data: no session gets in, not even a
	// superuser's.
	if c, err := pgx.Connect(ctx, copyURL); err == nil {
		_, err = c.Exec(ctx, `UPDATE users SET nickname = 'changed in the copy'`)
		c.Close(ctx)
		t.Errorf("a session could connect to the in-server copy (update: %v)", err)
	} else {
		t.Log(err)
	}

	// A DBA's maintenance: open it if it is closed, maintain, close it.
	var allow bool
	if err := admin.QueryRow(ctx, `SELECT datallowconn FROM pg_database WHERE datname = $1`, man.Database.Copy).Scan(&allow); err != nil {
		t.Fatal(err)
	}
	if !allow {
		execSQL(t, admin, "ALTER DATABASE "+sqlIdent(man.Database.Copy)+" WITH ALLOW_CONNECTIONS true")
	}
	c := connect(t, copyURL)
	execSQL(t, c, `VACUUM (FULL, FREEZE, ANALYZE)`)
	execSQL(t, c, `REINDEX DATABASE `+sqlIdent(man.Database.Copy))
	execSQL(t, c, `ANALYZE`)
	c.Close(ctx)
	if !allow {
		execSQL(t, admin, "ALTER DATABASE "+sqlIdent(man.Database.Copy)+" WITH ALLOW_CONNECTIONS false")
	}
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Errorf("verify after maintenance: %v", err)
	}
	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatalf("restore after maintenance on the copy: %v", err)
	}
	assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))

	// A copy someone opened and left open may have changed: refused, and
	// nothing is changed.
	info2 := create(t, m, nil)
	man2 := readManifest(t, f.dest, info2.ID)
	execSQL(t, admin, "ALTER DATABASE "+sqlIdent(man2.Database.Copy)+" WITH ALLOW_CONNECTIONS true CONNECTION LIMIT -1")
	migrateAndChange(t, f.dbURL)
	changed := dbSnapshot(t, f.dbURL)
	err := m.Restore(ctx, info2.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), "accepts connections") {
		t.Errorf("restore of a copy left open: %v", err)
	}
	t.Log(err)
	assertSame(t, "database after a refused restore", changed, dbSnapshot(t, f.dbURL))
}
