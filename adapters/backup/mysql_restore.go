package backup

// Restoring a MySQL/MariaDB dump all or nothing. DDL commits on its own in
// MySQL, so one transaction cannot hold a restore, and there is no RENAME
// DATABASE. Instead:
//
//  1. The dump is loaded into a fresh database, <db>_nocobot_restore, with
//     the character set and collation the original had, while the same
//     bytes are checked to be a whole dump. Any failure drops that
//     database: the real one was never touched.
//  2. The swap: triggers cannot cross databases in a RENAME TABLE and
//     views cannot be renamed across them at all, so the routines,
//     triggers, events and views of both databases are first dumped
//     (definitions only, small) and written to disk with what each
//     database holds (mysql_swap_record.go), then dropped; one RENAME
//     TABLE statement (atomic in MySQL and MariaDB) moves the current
//     tables to
//     <db>_nocobot_old and the restored ones into <db>; the restored
//     definitions are loaded into <db>; the character set and collation
//     are set. If any of this fails, the steps are undone: the tables go
//     back and the old definitions are loaded again. A RENAME TABLE still
//     running on the server when its client gave up is killed first.
//  3. Both helper databases are dropped, then the record.
//
// Before step 1 a restore settles what an interrupted one left (from its
// record) and refuses if the database holds a view, trigger, routine or
// event whose DEFINER this user could not set again (mysql_settle.go).
//
// Tables keep their AUTO_INCREMENT counters (in CREATE TABLE), routines,
// triggers and events keep the sql_mode, time zone and character sets they
// were created under (the dump sets them around each definition), and
// TIMESTAMP values are dumped in UTC, so the session's time zone does not
// shift them. The user needs CREATE and DROP on the two helper databases
// (GRANT ALL ON `<db>\_nocobot\_%`.* TO …) and, for definitions whose
// DEFINER is another account, SET USER (MariaDB) or SET_USER_ID/SUPER.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// helperName returns <db>_nocobot_<what>, within MySQL's 64 characters.
func helperName(db, what string) string {
	suffix := "_nocobot_" + what
	if len([]rune(db))+len(suffix) <= 64 {
		return db + suffix
	}
	sum := sha256.Sum256([]byte(db))
	r := []rune(db)
	return string(r[:64-len(suffix)-9]) + "_" + hex.EncodeToString(sum[:4]) + suffix
}

func (d *mysql) restore(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	first, err := br.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(first, []byte(headerPrefix)) {
		return errors.New("restore database: not a dump written by nocobot (no header line); nothing was changed")
	}
	first = bytes.Clone(first)
	h, err := parseHeaderLine(first)
	if err != nil {
		return fmt.Errorf("restore database: %w; nothing was changed", err)
	}
	target := d.dbname
	fresh, old := helperName(target, "restore"), helperName(target, "old")
	if err := d.settle(ctx, target, fresh, old); err != nil {
		return fmt.Errorf("restore database (%s): %w", d.src, err)
	}
	if err := d.checkDefiners(ctx, target); err != nil {
		return fmt.Errorf("restore database (%s) refused: %w", d.src, err)
	}
	if err := d.prepareHelpers(ctx, target, fresh, old, h); err != nil {
		return fmt.Errorf("restore database (%s): %w; nothing was changed", d.src, err)
	}
	if err := d.load(ctx, fresh, io.MultiReader(bytes.NewReader(first), br), h); err != nil {
		d.dropQuietly(ctx, fresh)
		return fmt.Errorf("restore database (%s): %w; the restored copy was dropped, nothing was changed", d.src, err)
	}
	if err := d.swap(ctx, target, fresh, old, h); err != nil {
		return fmt.Errorf("restore database (%s): %w", d.src, err)
	}
	// The swap committed: the database is restored whatever follows.
	if err := d.dropHelpers(ctx, old, fresh); err != nil {
		return &restoredError{fmt.Errorf("restore database (%s): restored, but %w; the next restore drops them", d.src, err)}
	}
	if err := removeSwapRecord(d.swapDir); err != nil {
		return &restoredError{fmt.Errorf("restore database (%s): restored, but its swap's record %s could not be removed (%w): remove it", d.src, d.swapDir, err)}
	}
	return nil
}

// prepareHelpers refuses when the old copy is still there (settle dropped
// or refused it already), drops a stale restored copy, and creates the
// fresh database.
func (d *mysql) prepareHelpers(ctx context.Context, target, fresh, old string, h dumpHeader) error {
	rows, err := d.query(ctx, "", "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN ("+
		myString(target)+", "+myString(old)+")")
	if err != nil {
		return err
	}
	var haveTarget bool
	for _, r := range rows {
		switch unescapeBatch(r[0]) {
		case old:
			return fmt.Errorf("database %s exists, left by an earlier restore that did not finish: check it and drop it, then restore again", old)
		case target:
			haveTarget = true
		}
	}
	if !haveTarget {
		return fmt.Errorf("database %q does not exist or this user may not see it", target)
	}
	create := "DROP DATABASE IF EXISTS " + myIdent(fresh) + "; CREATE DATABASE " + myIdent(fresh)
	if h.Charset != "" {
		create += " CHARACTER SET " + myString(h.Charset)
	}
	if h.Collation != "" {
		create += " COLLATE " + myString(h.Collation)
	}
	if _, err := d.query(ctx, "", create); err != nil {
		return fmt.Errorf("create the database to restore into, %s (the user needs CREATE and DROP on it): %w", fresh, err)
	}
	return nil
}

// checkRestore fails now, before any downtime, if a restore could not
// run later: the user may not create the helper databases or set the
// DEFINER of an object it would drop, or an earlier restore left an old
// copy that no record explains. It changes nothing.
func (d *mysql) checkRestore(ctx context.Context) error {
	probe, old := helperName(d.dbname, "check"), helperName(d.dbname, "old")
	rec, err := readSwapRecord(d.swapDir)
	if err != nil {
		return fmt.Errorf("restore check (%s): read the record an interrupted restore left (%s): %w", d.src, d.swapDir, err)
	}
	if rec == nil {
		_, err = d.leftoverOld(ctx, old)
	} else {
		_, err = d.swapState(ctx, rec, d.dbname, helperName(d.dbname, "restore"), old)
	}
	if err != nil {
		return fmt.Errorf("restore check (%s): %w", d.src, err)
	}
	if _, err := d.query(ctx, "", "CREATE DATABASE IF NOT EXISTS "+myIdent(probe)+"; DROP DATABASE "+myIdent(probe)); err != nil {
		return fmt.Errorf("restore check (%s): a restore could not create its working database (GRANT ALL ON `%s`.* to the user): %w",
			d.src, strings.ReplaceAll(d.dbname, "_", `\_`)+`\_nocobot\_%`, err)
	}
	if rec == nil {
		if err := d.checkDefiners(ctx, d.dbname); err != nil {
			return fmt.Errorf("restore check (%s): %w", d.src, err)
		}
	}
	return nil
}

// restoreChecker is a database that can tell before downtime whether a
// restore would be refused.
type restoreChecker interface {
	checkRestore(ctx context.Context) error
}

func (d *mysql) dropQuietly(ctx context.Context, db string) {
	_, _ = d.query(context.WithoutCancel(ctx), "", "DROP DATABASE IF EXISTS "+myIdent(db))
}

// load feeds the dump to the client in database db and, from the same
// bytes, checks that the dump is whole; then it checks that db holds the
// tables the header lists.
func (d *mysql) load(ctx context.Context, db string, dump io.Reader, h dumpHeader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	checked := make(chan error, 1)
	go func() {
		_, err := checkMySQLDump(pr)
		// Keep reading so that the client is never blocked by the check.
		_, _ = io.Copy(io.Discard, pr)
		checked <- err
	}()
	var out bytes.Buffer
	err := d.run(ctx, d.clientTools(), []string{"--binary-mode", "--max-allowed-packet=1G", "--", db},
		io.TeeReader(dump, pw), &limitedWriter{w: &out, n: 64 << 10})
	pw.CloseWithError(errors.Join(err, io.EOF))
	checkErr := <-checked
	if err != nil {
		return fmt.Errorf("load the dump into %s: %w", db, mysqlError(err))
	}
	if checkErr != nil {
		return checkErr
	}
	got, err := d.tableNames(ctx, db, "BASE TABLE")
	if err != nil {
		return err
	}
	if strings.Join(got, "\x00") != strings.Join(h.Tables, "\x00") {
		return fmt.Errorf("the loaded copy has %d tables, the dump lists %d", len(got), len(h.Tables))
	}
	return nil
}

// objects are a database's definitions other than tables.
type objects struct {
	charset, collation      string
	tables, views, triggers []string
	routines                [][2]string // type, name
	events                  []string
	script                  []byte // their definitions, as the dump tool writes them
}

func (d *mysql) objects(ctx context.Context, db string) (objects, error) {
	o, err := d.listObjects(ctx, db)
	if err != nil {
		return o, err
	}
	var script bytes.Buffer
	w := &limitedWriter{w: &script, n: 64 << 20}
	if len(o.triggers)+len(o.routines)+len(o.events) > 0 {
		args := []string{"--no-data", "--no-create-info", "--routines", "--triggers", "--events", "--skip-dump-date", "--", db}
		if err := d.run(ctx, d.dumpTools(), args, nil, w); err != nil {
			return o, fmt.Errorf("dump the definitions of %s: %w", db, mysqlError(err))
		}
	}
	if len(o.views) > 0 {
		args := append([]string{"--no-data", "--skip-triggers", "--skip-dump-date", "--", db}, o.views...)
		if err := d.run(ctx, d.dumpTools(), args, nil, w); err != nil {
			return o, fmt.Errorf("dump the views of %s: %w", db, mysqlError(err))
		}
	}
	o.script = script.Bytes()
	return o, nil
}

// listObjects is objects without the script.
func (d *mysql) listObjects(ctx context.Context, db string) (objects, error) {
	var o objects
	var err error
	if o.tables, err = d.tableNames(ctx, db, "BASE TABLE"); err != nil {
		return o, err
	}
	if o.views, err = d.tableNames(ctx, db, "VIEW"); err != nil {
		return o, err
	}
	lit := myString(db)
	rows, err := d.query(ctx, "", "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata WHERE schema_name = "+lit)
	if err != nil {
		return o, err
	}
	if len(rows) == 1 && len(rows[0]) == 2 {
		o.charset, o.collation = rows[0][0], rows[0][1]
	}
	rows, err = d.query(ctx, "", "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = "+lit)
	if err != nil {
		return o, err
	}
	for _, r := range rows {
		o.triggers = append(o.triggers, unescapeBatch(r[0]))
	}
	if rows, err = d.query(ctx, "", "SELECT routine_type, routine_name FROM information_schema.routines WHERE routine_schema = "+lit); err != nil {
		return o, err
	}
	for _, r := range rows {
		o.routines = append(o.routines, [2]string{r[0], unescapeBatch(r[1])})
	}
	if rows, err = d.query(ctx, "", "SELECT event_name FROM information_schema.events WHERE event_schema = "+lit); err != nil {
		return o, err
	}
	for _, r := range rows {
		o.events = append(o.events, unescapeBatch(r[0]))
	}
	return o, nil
}

// dropDefinitions returns the SQL that drops o's triggers (and, with all,
// its views, routines and events) in db.
func (o objects) dropDefinitions(db string, all bool) string {
	var b strings.Builder
	for _, t := range o.triggers {
		fmt.Fprintf(&b, "DROP TRIGGER IF EXISTS %s.%s;\n", myIdent(db), myIdent(t))
	}
	if !all {
		return b.String()
	}
	for _, v := range o.views {
		fmt.Fprintf(&b, "DROP VIEW IF EXISTS %s.%s;\n", myIdent(db), myIdent(v))
	}
	for _, r := range o.routines {
		fmt.Fprintf(&b, "DROP %s IF EXISTS %s.%s;\n", r[0], myIdent(db), myIdent(r[1]))
	}
	for _, e := range o.events {
		fmt.Fprintf(&b, "DROP EVENT IF EXISTS %s.%s;\n", myIdent(db), myIdent(e))
	}
	return b.String()
}

// swapSession starts the statements that drop definitions and rename
// tables: a lock held by a forgotten session must not keep them waiting
// for the server's default of a day.
const swapSession = "SET SESSION lock_wait_timeout = 30;\nSET FOREIGN_KEY_CHECKS = 0;\n"

// renameAll is one RENAME TABLE moving every pair at once.
func renameAll(pairs [][2]string) string {
	if len(pairs) == 0 {
		return ""
	}
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p[0] + " TO " + p[1]
	}
	return "RENAME TABLE " + strings.Join(parts, ", ") + ";\n"
}

func moves(tables []string, from, to string) [][2]string {
	out := make([][2]string, len(tables))
	for i, t := range tables {
		out[i] = [2]string{myIdent(from) + "." + myIdent(t), myIdent(to) + "." + myIdent(t)}
	}
	return out
}

// swap puts the restored copy's tables and definitions in place of the
// target's, or leaves the target as it was.
func (d *mysql) swap(ctx context.Context, target, fresh, old string, h dumpHeader) error {
	cur, err := d.objects(ctx, target)
	if err != nil {
		d.dropQuietly(ctx, fresh)
		return fmt.Errorf("%w; nothing was changed", err)
	}
	restored, err := d.objects(ctx, fresh)
	if err != nil {
		d.dropQuietly(ctx, fresh)
		return fmt.Errorf("%w; nothing was changed", err)
	}
	rec := swapRecord{Format: 1, Source: d.src, Target: target, Fresh: fresh, Old: old, Live: cur.side(), Restored: restored.side(),
		liveScript: cur.script, restoredScript: restored.script}
	rec.Restored.Charset, rec.Restored.Collation = h.Charset, h.Collation
	if err := writeSwapRecord(d.swapDir, rec); err != nil {
		d.dropQuietly(ctx, fresh)
		return fmt.Errorf("write the definitions to disk before the swap (%s): %w; nothing was changed", d.swapDir, err)
	}
	swapSQL := swapSession + restored.dropDefinitions(fresh, false) + cur.dropDefinitions(target, true) +
		"CREATE DATABASE " + myIdent(old) + ";\n" +
		renameAll(append(moves(cur.tables, target, old), moves(restored.tables, fresh, target)...))
	if _, err := d.query(ctx, "", swapSQL); err != nil {
		err = fmt.Errorf("swap the restored tables in: %w", err)
		killed, kerr := d.stopSwapStatements(ctx, old)
		if kerr != nil {
			return fmt.Errorf("%w; %w; the next restore settles it from the record in %s", err, kerr, d.swapDir)
		}
		if len(killed) > 0 {
			err = fmt.Errorf("%w (its RENAME TABLE, still running on the server, was killed)", err)
		}
		return d.undo(ctx, target, fresh, old, cur, err)
	}
	// Routines and triggers record the database's collation when they
	// are created: set it first.
	if err := d.setCharset(ctx, target, h.Charset, h.Collation); err != nil {
		return d.undo(ctx, target, fresh, old, cur, fmt.Errorf("set the database's character set: %w", err))
	}
	if err := d.loadScript(ctx, target, restored.script); err != nil {
		return d.undo(ctx, target, fresh, old, cur, fmt.Errorf("create the restored routines, triggers, events and views: %w", err))
	}
	return nil
}

func (d *mysql) setCharset(ctx context.Context, db, charset, collation string) error {
	if charset == "" || collation == "" {
		return nil
	}
	_, err := d.query(ctx, "", "ALTER DATABASE "+myIdent(db)+" CHARACTER SET "+myString(charset)+" COLLATE "+myString(collation))
	return err
}

// undo puts the target back as cur describes it after a failed swap: the
// tables that moved out come back, the definitions are loaded again. When
// undoing fails too, the swap's record stays for the next restore.
func (d *mysql) undo(ctx context.Context, target, fresh, old string, cur objects, cause error) error {
	ctx = context.WithoutCancel(ctx)
	failed := func(what string, err error) error {
		return fmt.Errorf("%w; %s (%v): the next restore settles it from the record in %s", cause, what, err, d.swapDir)
	}
	moved, err := d.tableNames(ctx, old, "BASE TABLE")
	if err != nil {
		return failed("undoing it failed too, the original tables may be in database "+old, err)
	}
	var sql strings.Builder
	sql.WriteString(swapSession)
	if len(moved) > 0 {
		now, err := d.listObjects(ctx, target)
		if err != nil {
			return failed("undoing it failed too, the original tables are in database "+old, err)
		}
		sql.WriteString(now.dropDefinitions(target, true))
		sql.WriteString(renameAll(append(moves(now.tables, target, fresh), moves(moved, old, target)...)))
	} else {
		sql.WriteString(cur.dropDefinitions(target, true))
	}
	if _, err := d.query(ctx, "", sql.String()); err != nil {
		return failed("undoing it failed too, the original tables are in database "+old, err)
	}
	if err := d.setCharset(ctx, target, cur.charset, cur.collation); err != nil {
		return failed("the tables were put back, but not the database's character set", mysqlError(err))
	}
	if err := d.loadScript(ctx, target, cur.script); err != nil {
		return failed("the tables were put back, but not all of their routines, triggers, events and views", err)
	}
	if err := d.dropHelpers(ctx, old, fresh); err != nil {
		return failed("undone, but the helper databases are left", err)
	}
	if err := removeSwapRecord(d.swapDir); err != nil {
		return fmt.Errorf("%w; undone, but the record %s could not be removed (%v): remove it", cause, d.swapDir, err)
	}
	return fmt.Errorf("%w; undone, nothing was changed", cause)
}
