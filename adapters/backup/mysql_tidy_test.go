package backup

import (
	"context"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// A MariaDB restore whose swap committed and whose helper databases then
// could not be dropped (the user may not drop <db>_nocobot_old) has
// restored the database: the storage is put back too, the restore
// succeeds and says what is left, and nothing says "nothing was changed".
func TestMySQLRestoreGoesOnWhenOnlyTheTidyingUpFails(t *testing.T) {
	ctx := context.Background()
	f := newMySQLFixture(t, mysqlShape{Small: 3, SmallRows: 2})
	root, err := New(f.localOptions(t, "", ""), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	before := mysqlSnapshot(t, f.db)
	filesBefore := fileSnapshot(t, f.storage, DefaultExcludes)
	info, err := mysqlCreate(t, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	user := testenv.NewMySQLUser(t, f.db, "pw")
	old := "`" + f.db + "_nocobot_old`"
	t.Cleanup(func() { testenv.MySQLExec(t, "", "DROP DATABASE IF EXISTS "+old) })
	helper := func(name string) string {
		return "`" + strings.ReplaceAll(f.db, "_", `\_`) + `\_nocobot\_` + name + "`.*"
	}
	allButDrop := "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, CREATE VIEW, SHOW VIEW, TRIGGER, CREATE ROUTINE, ALTER ROUTINE, EVENT, EXECUTE, LOCK TABLES, REFERENCES, CREATE TEMPORARY TABLES"
	for _, host := range []string{"127.0.0.1", "localhost"} {
		to := " TO '" + user + "'@'" + host + "'"
		testenv.MySQLExec(t, "", "GRANT ALL ON "+helper("restore")+to+"; GRANT ALL ON "+helper("check")+to+"; GRANT "+allButDrop+" ON "+helper("old")+to+"; GRANT SET USER ON *.*"+to+"; GRANT SELECT ON mysql.proc"+to)
	}
	m, err := New(f.localOptions(t, user, "pw"), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	mysqlMigrateAndChange(t, f.db)
	changeStorage(t, f.storage)

	progress := &lines{}
	err = m.Restore(ctx, info.ID, progress.add)
	t.Logf("restore: %v\n%s", err, progress)
	if err != nil {
		t.Errorf("restore whose swap committed: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("says nothing was changed after the swap: %v", err)
	}
	assertSame(t, "database", before, mysqlSnapshot(t, f.db))
	assertSame(t, "storage", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	if !strings.Contains(progress.String(), "restored, but") || !strings.Contains(progress.String(), "the next restore drops them") {
		t.Errorf("progress does not say what is left:\n%s", progress)
	}
}
