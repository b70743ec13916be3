package backup

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/format"
)

// PostgreSQL can copy a database inside the server (CREATE DATABASE …
// TEMPLATE … STRATEGY FILE_COPY): a file copy at disk speed, no dump. It
// needs the database to have no session at all, which is the case while
// every node is stopped and nocobot's own store lives elsewhere. The copy
// is a backup as long as it exists; a restore renames it into place and
// the replaced database away in one transaction, which takes a moment
// whatever the size.

var _ copier = (*postgres)(nil)

// adminDB is the database the copy statements connect to: the copied one
// must have no session, ours included.
const adminDB = "postgres"

// copyPlan says whether an in-server copy of the database is possible now,
// and why not; how says which copy the server would make (chooseCopy),
// where it can make one.
func (d *postgres) copyPlan(ctx context.Context) (ok bool, why string, how copyMethod) {
	if len(d.exclude) > 0 {
		return false, "nocobot's own schema lives in the database (a copy swapped in would rewind it)", copyMethod{}
	}
	// The plan is also made inside the downtime: its three questions are
	// asked at once (each psql takes a tenth of a second on a busy host)
	// and their answers read in order.
	admin := d.on(adminDB)
	var (
		r             room
		n             string
		roomErr, nErr error
		wg            sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		r, roomErr = d.serverRoom(ctx)
	}()
	go func() {
		defer wg.Done()
		// The swap gives the copy the live database's settings (swapSQL):
		// one the user may not set again would fail the rollback's swap.
		// (has_parameter_privilege: PostgreSQL 15, checked below.)
		n, nErr = admin.query(ctx, fmt.Sprintf(`SELECT count(*) FROM pg_db_role_setting s CROSS JOIN unnest(s.setconfig) c(kv), pg_roles u
WHERE u.rolname = current_user AND NOT u.rolsuper
  AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)
  AND ((s.setrole <> 0 AND s.setrole <> u.oid AND NOT u.rolcreaterole)
    OR EXISTS (SELECT 1 FROM pg_settings p WHERE p.name = lower(split_part(c.kv, '=', 1)) AND p.context = 'superuser'
      AND NOT has_parameter_privilege(p.name, 'SET')))`, sqlLiteral(d.dbname)))
	}()
	defer wg.Wait()
	// Autovacuum workers do not count: CREATE DATABASE and ALTER DATABASE
	// RENAME end them themselves, and after a large write one is often
	// on the database.
	out, err := admin.query(ctx, fmt.Sprintf(`SELECT current_setting('server_version_num')
  || '|' || (SELECT CASE WHEN rolcreatedb OR rolsuper THEN 'y' ELSE 'n' END FROM pg_roles WHERE rolname = current_user)
  || '|' || (SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type <> 'autovacuum worker')
  || '|' || (SELECT count(*) FROM pg_database WHERE datname = %s)
  || '|' || coalesce((SELECT CASE WHEN pg_has_role(current_user, datdba, 'MEMBER') THEN 'y' ELSE 'n' END FROM pg_database WHERE datname = %s), 'n')
  || '|' || (SELECT count(*) FROM pg_settings WHERE name = 'file_copy_method')`,
		sqlLiteral(d.dbname), sqlLiteral(d.dbname), sqlLiteral(d.dbname)))
	if err != nil {
		return false, "the server's maintenance database cannot be queried: " + err.Error(), copyMethod{}
	}
	f := strings.Split(out, "|")
	if len(f) != 6 {
		return false, "unexpected answer from the server", copyMethod{}
	}
	canClone := f[5] == "1"
	switch {
	case f[3] != "1":
		return false, "database " + d.dbname + " not found", copyMethod{}
	case f[1] != "y":
		return false, "the backup's database user may not create databases (no CREATEDB)", copyMethod{}
	case f[4] != "y":
		return false, "the backup's database user is not a member of the database's owner, so a copy swapped in could not be given its owner", copyMethod{}
	}
	if v, _ := strconv.Atoi(f[0]); v < 150000 {
		return false, "the server is older than PostgreSQL 15 (no STRATEGY FILE_COPY)", copyMethod{}
	}
	wg.Wait()
	switch {
	case nErr != nil:
		return false, "the database's settings cannot be read: " + nErr.Error(), copyMethod{}
	case n != "0":
		return false, "the database has settings (ALTER DATABASE/ROLE … SET) that the backup's database user may not set again on a copy swapped in: superuser-only ones or another role's", copyMethod{}
	}
	spaceNote := ""
	err = roomErr
	switch {
	case errors.Is(err, errRoomUnknown) && d.copyUnknownSpace:
		spaceNote = "; " + err.Error() + ", copied anyway (copy_when_space_unknown)"
	case errors.Is(err, errRoomUnknown):
		return false, err.Error() + "; set backup.copy_when_space_unknown to copy anyway", copyMethod{}
	case err != nil:
		return false, "the server's free space cannot be read: " + err.Error(), copyMethod{}
	case !r.enough():
		return false, "no room on the database server: " + r.String(), copyMethod{}
	default:
		spaceNote = fmt.Sprintf("; %s free on the server, the copy takes about %s", format.Bytes(r.free), format.Bytes(r.dbSize))
	}
	how = chooseCopy(canClone, r.fsType)
	// Last: sessions are the one reason that stopping the nodes removes.
	if f[2] != "0" {
		return false, fmt.Sprintf("%s %s", f[2], whySessions), how
	}
	return true, "no session on the database, and the server can copy it in place: " + how.why + spaceNote, how
}

// copyMethod is which copy the server makes, and why.
type copyMethod struct {
	// clone: CREATE DATABASE with file_copy_method = clone (PostgreSQL
	// 18), which copies each file with copy_file_range.
	clone bool
	why   string
}

// chooseCopy decides between a clone and a plain file copy. Filesystems
// that share blocks between files (XFS made with reflink, Btrfs, ZFS)
// make a clone in a moment whatever the size; on the others the kernel
// copies the data itself, and that was twice as slow as the server's own
// copy on ext4 (scripts/bench-pgcopy): a clone only where it pays.
// fsType is the filesystem's type as stat -f names it ("" unknown).
func chooseCopy(canClone bool, fsType string) copyMethod {
	const plain = "a file copy (CREATE DATABASE … STRATEGY FILE_COPY), at disk speed"
	const clone = "a clone (CREATE DATABASE … STRATEGY FILE_COPY with PostgreSQL 18's file_copy_method = clone)"
	switch {
	case !canClone:
		return copyMethod{why: plain + "; PostgreSQL 18 or newer would clone the files, in a moment whatever the size on XFS with reflink, Btrfs or ZFS"}
	case fsType == "xfs":
		return copyMethod{clone: true, why: clone + " on xfs: in a moment whatever the size where the filesystem was made with reflink (the default since xfsprogs 5.1), else at disk speed"}
	case fsType == "btrfs" || fsType == "zfs":
		return copyMethod{clone: true, why: clone + " on " + fsType + ", which shares the files' blocks with the copy: in a moment whatever the size"}
	case fsType == "":
		return copyMethod{why: plain + ", not a clone: the server's filesystem cannot be seen, and a clone is slower than a copy where it cannot share blocks (on XFS with reflink, Btrfs or ZFS it takes a moment whatever the size)"}
	}
	return copyMethod{why: plain + ", not a clone: " + fsType + " cannot share blocks between files, where a clone is slower than a copy (on XFS with reflink, Btrfs or ZFS it takes a moment whatever the size)"}
}

// whySessions ends the reason given when sessions on the database are
// all that prevents a copy.
const whySessions = "other session(s) are connected to the database (nodes still running?)"

// copyName is the in-server copy's database name for a backup, within
// PostgreSQL's 63 bytes.
func copyName(db, id string) string {
	suffix := "_nbcopy_" + strings.NewReplacer("-", "_", ".", "_").Replace(id[max(0, len(id)-16):])
	if len(db)+len(suffix) > 63 {
		db = db[:63-len(suffix)]
	}
	return db + suffix
}

// copyTo copies the database into a new database named name, checks that
// the copy has the same relations and columns, and closes it to
// connections: from then on no session can change it (a superuser would
// have to open it again, which verifyCopy sees). clone: the server
// clones the files (chooseCopy). It returns the signature for the
// manifest, and how the server copied the database.
func (d *postgres) copyTo(ctx context.Context, name string, clone bool) (sig, how string, err error) {
	admin := d.on(adminDB)
	create := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", sqlIdent(name), sqlIdent(d.dbname))
	how = "copied"
	began := time.Now()
	if clone {
		how = "cloned (file_copy_method = clone)"
		_, err = admin.statementsWithin(ctx, 0, "SET file_copy_method = clone", create)
	} else {
		_, err = admin.queryWithin(ctx, create, 0)
	}
	if i := strings.Index(fmt.Sprint(err), "could not clone file"); i >= 0 && ctx.Err() == nil {
		// Where copy_file_range is refused (some network or stacked
		// filesystems), the server copies as on older releases; a
		// failed CREATE DATABASE leaves nothing behind.
		how = "copied (the server " + err.Error()[i:] + ")"
		_, err = admin.statementsWithin(ctx, 0, create)
	}
	if err != nil && ctx.Err() != nil {
		// The server goes on copying after its client stopped, and would
		// commit a copy no backup holds: cancel it there.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, cerr := admin.query(cctx, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = "+sqlLiteral(create))
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return "", "", fmt.Errorf("in-server copy: %w", err)
	}
	copied := time.Since(began)
	// Both signatures at once: this is inside the downtime. (The copy
	// cannot be closed in the session that reads its signature: the
	// server refuses to close the current database.)
	var want, got string
	var werr, gerr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, gerr = d.on(name).signature(ctx)
	}()
	want, werr = d.signature(ctx)
	wg.Wait()
	err = errors.Join(werr, gerr)
	if err == nil && got != want {
		err = fmt.Errorf("the copy's relations differ from the database's (%s, want %s)", got, want)
	}
	if err == nil {
		err = d.openCopy(ctx, name, false)
	}
	how += fmt.Sprintf(" in %s, checked in %s", copied.Round(10*time.Millisecond), (time.Since(began) - copied).Round(10*time.Millisecond))
	if err != nil {
		return "", "", errors.Join(fmt.Errorf("verify in-server copy: %w", err), d.dropCopy(context.WithoutCancel(ctx), name))
	}
	return want, how, nil
}

// signatureVersion starts the signatures of copies closed to
// connections; older ones summed up sizes and row estimates.
const signatureVersion = "v2 "

// signature sums up the database's relations and columns: names, kinds,
// types. Sizes and statistics are left out: VACUUM, ANALYZE, REINDEX and
// anti-wraparound vacuums change them without changing the data.
func (d *postgres) signature(ctx context.Context) (string, error) {
	out, err := d.query(ctx, `SELECT count(DISTINCT c.oid) || ' relations, md5 ' || md5(string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text
    || coalesce(':' || a.attnum || '=' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ''),
  ',' ORDER BY n.nspname, c.relname, a.attnum))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
WHERE c.relkind IN ('r', 'i', 'S', 'm', 'p', 'v', 'f', 'I') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'`)
	if err != nil {
		return "", err
	}
	return signatureVersion + out, nil
}

// legacySignature is the signature of copies taken before they were
// closed to connections: relations, sizes and row estimates.
func (d *postgres) legacySignature(ctx context.Context) (string, error) {
	return d.query(ctx, `SELECT count(*) || ' relations, ' || pg_size_pretty(sum(pg_relation_size(c.oid))) || ', md5 '
  || md5(string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || pg_relation_size(c.oid) || ':' || c.reltuples::bigint,
     ',' ORDER BY n.nspname, c.relname))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'i', 'S', 'm', 'p', 't') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'`)
}

// openCopy opens the copy to connections (Export dumps it) or closes it
// again (no session, no connection limit beyond 0).
func (d *postgres) openCopy(ctx context.Context, name string, open bool) error {
	q := "ALTER DATABASE %s WITH ALLOW_CONNECTIONS false CONNECTION LIMIT 0"
	if open {
		q = "ALTER DATABASE %s WITH ALLOW_CONNECTIONS true CONNECTION LIMIT -1"
	}
	if _, err := d.on(adminDB).query(ctx, fmt.Sprintf(q, sqlIdent(name))); err != nil {
		return fmt.Errorf("in-server copy %s: %w", name, err)
	}
	return nil
}

// verifyCopy checks that the copy still exists and cannot have changed:
// it is still closed to connections, or (opened by nocobot for an
// export, opened) still has its relations and columns. A copy someone
// opened is refused: its data may have changed, which nothing cheap
// can tell.
func (d *postgres) verifyCopy(ctx context.Context, name, sig string, opened bool) error {
	out, err := d.on(adminDB).query(ctx, "SELECT datallowconn FROM pg_database WHERE datname = "+sqlLiteral(name))
	if err != nil {
		return fmt.Errorf("in-server copy %s: %w", name, err)
	}
	switch {
	case out == "":
		return fmt.Errorf("in-server copy %s is gone", name)
	case !strings.HasPrefix(sig, signatureVersion):
		got, err := d.on(name).legacySignature(ctx)
		if err != nil {
			return fmt.Errorf("in-server copy %s: %w", name, err)
		}
		if got != sig {
			return fmt.Errorf("in-server copy %s changed since the backup (%s, recorded %s)", name, got, sig)
		}
		return nil
	case out == "f":
		return nil
	case !opened:
		return fmt.Errorf("in-server copy %s accepts connections again (ALLOW_CONNECTIONS was turned back on), so its data may have changed since the backup; if nobody changed it, close it (ALTER DATABASE %s WITH ALLOW_CONNECTIONS false) and retry", name, sqlIdent(name))
	}
	got, err := d.on(name).signature(ctx)
	if err != nil {
		return fmt.Errorf("in-server copy %s: %w", name, err)
	}
	if got != sig {
		return fmt.Errorf("in-server copy %s changed since the backup (%s, recorded %s)", name, got, sig)
	}
	return nil
}

// replacedName is a fresh name for the database a swap replaces: kept
// under a "…_nbcopy_old_…" name and dropped by dropReplaced after the
// downtime (Export, retention). Where that name would not fit, it is
// another one, which the caller drops at once (dropNow).
func (d *postgres) replacedName() (name string, dropNow bool) {
	old := replacedPrefix(d.dbname) + strconv.FormatInt(time.Now().UnixNano(), 36)
	if len(old) > 63 {
		return copyName(d.dbname, "old-"+strconv.FormatInt(time.Now().Unix(), 36)), true
	}
	return old, false
}

// swapIn makes the copy the database: both renames in one transaction,
// a moment whatever the size, the replaced database renamed to old
// (replacedName). It refuses while any session is connected to the
// database (it terminates none). An error means nothing was changed.
func (d *postgres) swapIn(ctx context.Context, name, old string) error {
	sql := strings.NewReplacer("{live}", sqlLiteral(d.dbname), "{copy}", sqlLiteral(name), "{old}", sqlLiteral(old)).Replace(swapSQL)
	if _, err := d.on(adminDB).query(ctx, sql); err != nil {
		return fmt.Errorf("swap the in-server copy in: %w", err)
	}
	return nil
}

// swapSQL renames the live database away and the copy into its place,
// and gives the copy what belongs to the database rather than to its
// content, as the live one has it: owner, access list, connection limit,
// whether it accepts connections, comment, and the ALTER DATABASE … SET
// and ALTER ROLE … IN DATABASE … SET settings. All in one transaction:
// what cannot be given back fails the swap, and nothing changes.
// Settings whose value is a list (search_path …) are stored in SQL list
// syntax already, every other one is quoted as a literal.
const swapSQL = `SET client_min_messages = warning;
DO $nocobot$
DECLARE
  live name := {live};
  cp name := {copy};
  old name := {old};
  d record;
  a record;
  s record;
  k text;
  v text;
BEGIN
  SELECT oid, datdba::regrole::text AS owner, datconnlimit, datallowconn, datacl,
      shobj_description(oid, 'pg_database') AS comment
    INTO d FROM pg_database WHERE datname = live;
  IF d.oid IS NULL THEN
    RAISE EXCEPTION 'database % not found', live;
  END IF;
  EXECUTE format('ALTER DATABASE %I RENAME TO %I', live, old);
  EXECUTE format('ALTER DATABASE %I RENAME TO %I', cp, live);
  EXECUTE format('ALTER DATABASE %I OWNER TO %s', live, d.owner);
  EXECUTE format('ALTER DATABASE %I WITH ALLOW_CONNECTIONS %s CONNECTION LIMIT %s', live, d.datallowconn::text, d.datconnlimit);
  EXECUTE format('COMMENT ON DATABASE %I IS %L', live, d.comment);
  IF d.datacl IS NOT NULL THEN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', live);
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM %s', live, d.owner);
    FOR a IN SELECT grantee, privilege_type, is_grantable FROM aclexplode(d.datacl) LOOP
      EXECUTE format('GRANT %s ON DATABASE %I TO %s%s', a.privilege_type, live,
        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
  END IF;
  FOR s IN SELECT r.setrole, c.kv FROM pg_db_role_setting r, unnest(r.setconfig) c(kv) WHERE r.setdatabase = d.oid LOOP
    k := split_part(s.kv, '=', 1);
    v := substr(s.kv, length(k) + 2);
    IF lower(k) NOT IN ('search_path', 'temp_tablespaces', 'session_preload_libraries',
        'shared_preload_libraries', 'local_preload_libraries', 'unix_socket_directories') THEN
      v := quote_literal(v);
    END IF;
    k := (SELECT string_agg(quote_ident(p), '.') FROM unnest(string_to_array(k, '.')) p);
    IF s.setrole = 0 THEN
      EXECUTE format('ALTER DATABASE %I SET %s TO %s', live, k, v);
    ELSE
      EXECUTE format('ALTER ROLE %s IN DATABASE %I SET %s TO %s', s.setrole::regrole::text, live, k, v);
    END IF;
  END LOOP;
END
$nocobot$;`

// databasesExist says which of names exist on the server.
func (d *postgres) databasesExist(ctx context.Context, names ...string) (map[string]bool, error) {
	lits := make([]string, len(names))
	for i, n := range names {
		lits[i] = sqlLiteral(n)
	}
	out, err := d.on(adminDB).query(ctx, "SELECT datname FROM pg_database WHERE datname IN ("+strings.Join(lits, ", ")+")")
	if err != nil {
		return nil, err
	}
	found := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			found[l] = true
		}
	}
	return found, nil
}

// replacedPrefix starts the names of databases replaced by a swap.
func replacedPrefix(db string) string { return db + "_nbcopy_old_" }

// dropReplaced drops the databases that swaps replaced.
func (d *postgres) dropReplaced(ctx context.Context) ([]string, error) {
	pat := strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(replacedPrefix(d.dbname)) + "%"
	out, err := d.on(adminDB).query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE "+sqlLiteral(pat))
	if err != nil {
		return nil, err
	}
	var dropped []string
	var errs []error
	for _, name := range strings.Fields(out) {
		if err := d.dropCopy(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		dropped = append(dropped, name)
	}
	return dropped, errors.Join(errs...)
}

// copies lists the databases named like backups' in-server copies (not
// those replaced by a swap or made fresh for a restore).
func (d *postgres) copies(ctx context.Context) ([]string, error) {
	esc := strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace
	prefix := copyName(d.dbname, "0123456789abcdef") // ids end in 16 characters
	prefix = prefix[:len(prefix)-16]
	out, err := d.on(adminDB).query(ctx, fmt.Sprintf("SELECT datname FROM pg_database WHERE datname LIKE %s AND datname NOT LIKE %s AND datname NOT LIKE %s",
		sqlLiteral(esc(prefix)+"%"), sqlLiteral(esc(prefix+"old_")+"%"), sqlLiteral(esc(prefix+"new_")+"%")))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// dropCopy drops an in-server copy; one that is gone already is fine.
func (d *postgres) dropCopy(ctx context.Context, name string) error {
	_, err := d.on(adminDB).queryWithin(ctx, "DROP DATABASE IF EXISTS "+sqlIdent(name), 0)
	return err
}

// copyAsDatabase is the copy as a database to dump (Export).
func (d *postgres) copyAsDatabase(name string) database { return d.on(name) }

func sqlIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
