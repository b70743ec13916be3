package backup

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A directory-format dump (pg_dump -Fd -j N) is the fastest dump by hand:
// tables are dumped by N workers, each file compressed at a low level. It
// needs the tools on this host (they write into the backup folder), so it
// is the local mode's dump; the container mode streams -Fc. Restoring it is
// parallel too (pg_restore -j N), into a fresh database that is then
// swapped in, so it stays all or nothing. A database with excluded schemas
// is dumped with -Fc: a swapped-in database would lose them.

// canDumpDir says whether this database is dumped into a folder.
func (d *postgres) canDumpDir() bool {
	_, local := d.r.(localRunner)
	return local && len(d.exclude) == 0
}

// dumpDir runs pg_dump -Fd into dir (which must not exist).
func (d *postgres) dumpDir(ctx context.Context, dir string, jobs, level int) error {
	err := d.r.run(ctx, readPassword+`exec pg_dump -Fd -j "$2" -Z "$3" -f "$4" -d "$1"`,
		[]string{d.conninfo, strconv.Itoa(jobs), strconv.Itoa(level), dir}, withPassword(d.password, nil), nil)
	if err != nil {
		return fmt.Errorf("pg_dump -Fd (%s, on %s): %w", d.src, d.r.where(), err)
	}
	return nil
}

// checkDir reads a directory dump's table of contents with pg_restore
// (the data files are checked while they are hashed).
func (d *postgres) checkDir(ctx context.Context, dir string) (string, error) {
	var toc strings.Builder
	if err := d.r.run(ctx, `exec pg_restore -l "$1"`, []string{dir}, nil, &toc); err != nil {
		return "", fmt.Errorf("the dump's table of contents does not read back with pg_restore: %w", err)
	}
	return toc.String(), nil
}

// restoreDirFresh restores a directory dump with pg_restore -j into a
// fresh database made like the current one (owner, encoding, locale) and
// returns its name; the caller swaps it in (swapIn) or drops it. On error
// the fresh database is dropped: nothing was changed.
func (d *postgres) restoreDirFresh(ctx context.Context, dir string, jobs int) (string, error) {
	fresh := copyName(d.dbname, "new-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	admin := d.on(adminDB)
	props, err := admin.query(ctx, fmt.Sprintf(`SELECT pg_get_userbyid(datdba) || '|' || pg_encoding_to_char(encoding) || '|' || datcollate || '|' || datctype
  FROM pg_database WHERE datname = %s`, sqlLiteral(d.dbname)))
	if err == nil {
		p := strings.Split(props, "|")
		if len(p) != 4 {
			err = fmt.Errorf("database %s not found", d.dbname)
		} else {
			_, err = admin.queryWithin(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 OWNER %s ENCODING %s LC_COLLATE %s LC_CTYPE %s",
				sqlIdent(fresh), sqlIdent(p[0]), sqlLiteral(p[1]), sqlLiteral(p[2]), sqlLiteral(p[3])), 0)
		}
	}
	if err != nil {
		return "", fmt.Errorf("create a fresh database to restore into: %w", err)
	}
	target := d.on(fresh)
	err = d.r.run(ctx, readPassword+`exec pg_restore --exit-on-error -j "$2" -d "$1" "$3"`,
		[]string{target.conninfo, strconv.Itoa(jobs), dir}, withPassword(d.password, nil), nil)
	if err != nil {
		err = fmt.Errorf("pg_restore -j %d: %w", jobs, err)
		if derr := d.dropCopy(context.WithoutCancel(ctx), fresh); derr != nil {
			return "", fmt.Errorf("%w (the fresh database %s is left: %w)", err, fresh, derr)
		}
		return "", err
	}
	return fresh, nil
}
