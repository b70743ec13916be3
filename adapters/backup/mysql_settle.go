package backup

// What a restore does before it changes anything: it settles what an
// earlier, interrupted restore left, and it makes sure it could put back
// every view, trigger, routine and event it is about to drop.
//
// Settling. A restore killed in its swap leaves its record on disk
// (mysql_swap_record.go) and the databases somewhere between the two sides
// of its one RENAME TABLE, which is atomic. The next restore first stops
// any statement of that swap still running on the server (see
// stopSwapStatements), then reads where the tables are:
//   - the live tables still in <db> and the restored ones in
//     <db>_nocobot_restore: the RENAME did not happen; the live definitions
//     are loaded again from the record;
//   - the restored tables in <db>: the RENAME happened; the swap is
//     finished, the restored definitions loaded from the record.
//
// Either way <db> is then checked to hold the tables and objects the record
// lists, and only then are <db>_nocobot_old and <db>_nocobot_restore
// dropped and the record removed. Anything else is refused, naming the
// databases. A <db>_nocobot_old without a record (left by an older version
// of nocobot) is dropped when it holds nothing, and refused otherwise: no
// one can tell which copy is the complete one.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// settle finishes or undoes the swap an interrupted restore left.
func (d *mysql) settle(ctx context.Context, target, fresh, old string) error {
	if _, err := d.stopSwapStatements(ctx, old); err != nil {
		return err
	}
	rec, err := readSwapRecord(d.swapDir)
	if err != nil {
		return fmt.Errorf("read the record an interrupted restore left (%s): %w; move it away only after checking database %s by hand", d.swapDir, err, target)
	}
	if rec == nil {
		drop, err := d.leftoverOld(ctx, old)
		if err != nil || !drop {
			return err
		}
		if _, err := d.query(ctx, "", "DROP DATABASE IF EXISTS "+myIdent(old)); err != nil {
			return fmt.Errorf("drop the empty database %s an earlier restore left: %w", old, err)
		}
		return nil
	}
	renamed, err := d.swapState(ctx, rec, target, fresh, old)
	if err != nil {
		return err
	}
	if renamed {
		err = d.redefine(ctx, target, rec.Restored, rec.restoredScript)
	} else {
		err = d.redefine(ctx, target, rec.Live, rec.liveScript)
	}
	if err != nil {
		return fmt.Errorf("settle the swap an interrupted restore left (record in %s): %w", d.swapDir, err)
	}
	if err := d.dropHelpers(ctx, old, fresh); err != nil {
		return fmt.Errorf("settle the swap an interrupted restore left: %w", err)
	}
	if err := removeSwapRecord(d.swapDir); err != nil {
		return fmt.Errorf("settle the swap an interrupted restore left: remove its record: %w", err)
	}
	return nil
}

// swapState tells, from where the tables are, on which side of its RENAME
// TABLE the swap that rec records stopped, and fails when the databases
// match neither side.
func (d *mysql) swapState(ctx context.Context, rec *swapRecord, target, fresh, old string) (renamed bool, err error) {
	var tables [3][]string
	for i, db := range []string{target, fresh, old} {
		if tables[i], err = d.tableNames(ctx, db, "BASE TABLE"); err != nil {
			return false, err
		}
	}
	t, f, o := tables[0], tables[1], tables[2]
	switch {
	case sameNames(t, rec.Live.Tables) && len(o) == 0 && (len(rec.Restored.Tables) == 0 || sameNames(f, rec.Restored.Tables)):
		return false, nil
	case sameNames(t, rec.Restored.Tables) && len(f) == 0:
		return true, nil
	}
	return false, fmt.Errorf("an earlier restore was interrupted in its swap, and databases %s (%d tables), %s (%d) and %s (%d) match neither side of it as recorded in %s: check them by hand, then remove that folder",
		target, len(t), fresh, len(f), old, len(o), d.swapDir)
}

// leftoverOld reports whether old is there and empty (to be dropped), and
// fails, saying what to do, when it holds anything while no record
// explains it.
func (d *mysql) leftoverOld(ctx context.Context, old string) (drop bool, err error) {
	rows, err := d.query(ctx, "", "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = "+myString(old))
	if err != nil {
		return false, err
	}
	if len(rows) != 1 || rows[0][0] == "0" {
		return false, nil
	}
	o, err := d.listObjects(ctx, old)
	if err != nil {
		return false, err
	}
	if n := len(o.tables) + len(o.names()); n > 0 {
		return false, fmt.Errorf("database %s, left by an earlier restore, is not empty (%d tables, views, triggers, routines or events) and no record of that restore is in %s: check whether %s is complete, keep what you need from %s, drop it, then restore again",
			old, n, d.swapDir, d.dbname, old)
	}
	return true, nil
}

// redefine gives db the definitions and character set of side: drops what
// it holds, loads script, and checks that db then holds what side lists.
func (d *mysql) redefine(ctx context.Context, db string, side swapSide, script []byte) error {
	now, err := d.listObjects(ctx, db)
	if err != nil {
		return err
	}
	if _, err := d.query(ctx, "", swapSession+now.dropDefinitions(db, true)); err != nil {
		return fmt.Errorf("drop the definitions in %s: %w", db, err)
	}
	if err := d.setCharset(ctx, db, side.Charset, side.Collation); err != nil {
		return fmt.Errorf("set the character set of %s: %w", db, err)
	}
	if err := d.loadScript(ctx, db, script); err != nil {
		return fmt.Errorf("create the recorded routines, triggers, events and views in %s: %w", db, err)
	}
	after, err := d.listObjects(ctx, db)
	if err != nil {
		return err
	}
	if !sameNames(after.tables, side.Tables) || !sameNames(after.names(), side.Objects) {
		return fmt.Errorf("%s holds %d tables and %d other objects, the record lists %d and %d", db,
			len(after.tables), len(after.names()), len(side.Tables), len(side.Objects))
	}
	return nil
}

// loadScript runs definitions as the dump tool wrote them in db.
func (d *mysql) loadScript(ctx context.Context, db string, script []byte) error {
	if len(script) == 0 {
		return nil
	}
	var out strings.Builder
	if err := d.run(ctx, d.clientTools(), []string{"--binary-mode", "--", db}, strings.NewReader(string(script)),
		&limitedWriter{w: &out, n: 64 << 10}); err != nil {
		return mysqlError(err)
	}
	return nil
}

// dropHelpers drops the swap's two helper databases, even after ctx ended.
func (d *mysql) dropHelpers(ctx context.Context, old, fresh string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if _, err := d.query(ctx, "", "DROP DATABASE IF EXISTS "+myIdent(old)+"; DROP DATABASE IF EXISTS "+myIdent(fresh)); err != nil {
		return fmt.Errorf("drop the helper databases %s and %s: %w", old, fresh, err)
	}
	return nil
}

// stopSwapStatements kills this user's sessions still running a statement
// of a swap into old (its CREATE DATABASE or RENAME TABLE). Their clients
// can outlive the restore that started them: a docker exec given up on
// leaves its process running in the container, and a client started on
// this host is not killed with nocobot (it is not the process the shell
// execs). A RENAME waiting for a lock would then move the tables long after
// the restore gave up. It returns the killed sessions' ids.
func (d *mysql) stopSwapStatements(ctx context.Context, old string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	find := "SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND user = SUBSTRING_INDEX(USER(), '@', 1)" +
		" AND (info LIKE 'RENAME TABLE %' OR info LIKE 'CREATE DATABASE %') AND LOCATE(" + myString(myIdent(old)) + ", info) > 0"
	var killed []string
	for {
		rows, err := d.query(ctx, "", find)
		if err != nil {
			return killed, fmt.Errorf("look for statements of an earlier swap still running on the server: %w", err)
		}
		if len(rows) == 0 {
			return killed, nil
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, r[0])
			if !slices.Contains(killed, r[0]) {
				killed = append(killed, r[0])
			}
			// It may have ended meanwhile ("Unknown thread id"): looking
			// again tells.
			_, _ = d.query(ctx, "", "KILL CONNECTION "+r[0])
		}
		select {
		case <-ctx.Done():
			return killed, fmt.Errorf("a RENAME TABLE of the swap still runs on the server as connection %s and could not be stopped: KILL it as an administrator, then retry", strings.Join(ids, ", "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkDefiners refuses when db holds a view, trigger, routine or event
// whose DEFINER this user may not set: the swap drops them all, and an
// undone swap must create them again. Each other definer is tried once
// with a view in a scratch database, which asks the server exactly what
// it would ask then (SET USER or SUPER in MariaDB, SET_USER_ID or SUPER
// in MySQL, roles and SYSTEM_USER included).
func (d *mysql) checkDefiners(ctx context.Context, db string) error {
	lit := myString(db)
	rows, err := d.query(ctx, "", "SELECT 1, CURRENT_USER(), ''"+
		" UNION ALL SELECT 2, definer, CONCAT('view `', table_name, '`') FROM information_schema.views WHERE table_schema = "+lit+
		" UNION ALL SELECT 3, definer, CONCAT('trigger `', trigger_name, '`') FROM information_schema.triggers WHERE trigger_schema = "+lit+
		" UNION ALL SELECT 4, definer, CONCAT(LOWER(routine_type), ' `', routine_name, '`') FROM information_schema.routines WHERE routine_schema = "+lit+
		" UNION ALL SELECT 5, definer, CONCAT('event `', event_name, '`') FROM information_schema.events WHERE event_schema = "+lit+
		" ORDER BY 1, 3")
	if err != nil {
		return fmt.Errorf("read the definers of %s's views, triggers, routines and events: %w", db, err)
	}
	var me string
	var definers []string
	objects := map[string][]string{}
	for _, r := range rows {
		if len(r) != 3 {
			continue
		}
		who, what := unescapeBatch(r[1]), unescapeBatch(r[2])
		if r[0] == "1" {
			me = who
			continue
		}
		if who == me || who == "" {
			continue
		}
		if objects[who] == nil {
			definers = append(definers, who)
		}
		objects[who] = append(objects[who], what)
	}
	probe := helperName(db, "check")
	if len(definers) > 0 {
		defer d.dropQuietly(ctx, probe)
	}
	for _, who := range definers {
		_, err := d.query(ctx, "", "CREATE DATABASE IF NOT EXISTS "+myIdent(probe)+"; CREATE OR REPLACE DEFINER = "+definerClause(who)+
			" VIEW "+myIdent(probe)+".`nocobot_definer_check` AS SELECT 1")
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "1227") {
			return fmt.Errorf("check whether this user may create objects defined by %s: %w", who, err)
		}
		what := objects[who][0]
		if n := len(objects[who]) - 1; n > 0 {
			what += fmt.Sprintf(" (and %d more)", n)
		}
		return fmt.Errorf("%s in %s has DEFINER %s, which this user (%s) may not set, so a restore could not create it again: grant the user SET USER (MariaDB) or SET_USER_ID (MySQL), or recreate it with DEFINER %s",
			what, db, who, me, me)
	}
	return nil
}

// definerClause quotes a DEFINER as user@host (the host after the last @;
// a role has none).
func definerClause(who string) string {
	i := strings.LastIndex(who, "@")
	if i < 0 {
		return myString(who)
	}
	return myString(who[:i]) + "@" + myString(who[i+1:])
}
