package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nocobot/nocobot/format"
)

// An in-server copy takes about the database's size on the server's
// disk, next to the live database: a copy that fills that disk takes the
// live database down with it. Before a copy, the free space of the
// filesystem the copy lands on (the database's tablespace, else the data
// directory) is read with df: inside the database container in the
// container mode; in the URL mode through the server itself (COPY FROM
// PROGRAM, which needs superuser or pg_execute_server_program:
// pg_ls_dir and pg_stat_file see files, not free space). Where it cannot
// be seen the plan says so and dumps, unless CopyWhenSpaceUnknown.

// room is what the server's filesystem holds for a copy.
type room struct {
	dir         string
	free, total int64
	dbSize      int64
	// fsType is the filesystem's type as stat -f names it ("" unknown):
	// it tells which copy the server makes (chooseCopy).
	fsType string
}

// errRoomUnknown: the server does not let nocobot see its free space.
var errRoomUnknown = errors.New("the free space on the database server cannot be seen")

// keepFree is the part of the server's filesystem that must stay free
// after a copy: the live database goes on writing (WAL, temporary files).
func (r room) keepFree() int64 { return r.total / 10 }

// enough says whether the copy fits with keepFree left.
func (r room) enough() bool { return r.free-r.dbSize >= r.keepFree() }

func (r room) String() string {
	return fmt.Sprintf("the server's filesystem of %s has %s free; the copy takes about %s and %s (a tenth of it) must stay free",
		r.dir, format.Bytes(r.free), format.Bytes(r.dbSize), format.Bytes(r.keepFree()))
}

// serverRoom reads the free space where a copy of the database would be
// written.
func (d *postgres) serverRoom(ctx context.Context) (room, error) {
	out, err := d.on(adminDB).query(ctx, fmt.Sprintf(`SELECT coalesce(nullif(pg_tablespace_location(dattablespace), ''),
    CASE WHEN pg_has_role('pg_read_all_settings', 'USAGE') THEN current_setting('data_directory') ELSE '' END)
  || '|' || pg_database_size(oid)
  || '|' || CASE WHEN pg_has_role('pg_execute_server_program', 'USAGE') THEN 'y' ELSE 'n' END
FROM pg_database WHERE datname = %s`, sqlLiteral(d.dbname)))
	if err != nil {
		return room{}, err
	}
	f := strings.Split(out, "|")
	if len(f) != 3 {
		return room{}, fmt.Errorf("unexpected answer from the server: %q", out)
	}
	r := room{dir: f[0]}
	if r.dbSize, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return room{}, fmt.Errorf("unexpected database size %q", f[1])
	}
	if r.dir == "" {
		return room{}, fmt.Errorf("%w: the backup's database user may not read data_directory (pg_read_all_settings)", errRoomUnknown)
	}
	var df string
	if _, local := d.r.(localRunner); !local {
		var b bytes.Buffer
		if err := d.r.run(ctx, `df -Pk -- "$1" && `+statFS(`"$1"`), []string{r.dir}, nil, &limitedWriter{w: &b, n: 64 << 10}); err != nil {
			return room{}, fmt.Errorf("%w: df in the database container: %w", errRoomUnknown, err)
		}
		df = b.String()
	} else {
		if f[2] != "y" {
			return room{}, fmt.Errorf("%w: the backup's database user may not run df on the server (pg_execute_server_program)", errRoomUnknown)
		}
		dir := "'" + strings.ReplaceAll(r.dir, "'", `'\''`) + "'"
		program := "df -Pk -- " + dir + " && " + statFS(dir)
		df, err = d.on(adminDB).query(ctx, `CREATE TEMP TABLE nocobot_df (line text);
COPY nocobot_df FROM PROGRAM `+sqlLiteral(program)+`;
SELECT line FROM nocobot_df`)
		if err != nil {
			return room{}, fmt.Errorf("%w: df through the server: %w", errRoomUnknown, err)
		}
	}
	if r.total, r.free, err = parseDF(df); err != nil {
		return room{}, fmt.Errorf("%w: %w", errRoomUnknown, err)
	}
	r.fsType = parseFSType(df)
	return r, nil
}

// statFS is the shell command that prints the type of the filesystem of
// dir (quoted for the shell) on a line of its own after df's (GNU and
// busybox stat know -f -c %T); where it cannot, nothing.
func statFS(dir string) string { return "{ stat -f -c 'fstype %T' -- " + dir + " 2>/dev/null || :; }" }

// parseFSType reads statFS's line.
func parseFSType(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(l), "fstype "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

// parseDF reads the size and the available space from df -Pk's output.
func parseDF(out string) (total, free int64, err error) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		t, terr := strconv.ParseInt(f[1], 10, 64)
		a, aerr := strconv.ParseInt(f[3], 10, 64)
		if terr == nil && aerr == nil {
			return t * 1024, a * 1024, nil
		}
	}
	return 0, 0, fmt.Errorf("unexpected df output %q", strings.TrimSpace(out))
}
