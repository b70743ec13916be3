package backup

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// pg_dump refuses a server newer than itself ("aborting because of server
// version mismatch"), and only at the backup, inside the downtime: Check
// compares the versions before.

// dumpVersion returns the version of the pg_dump the backups run (on this
// host or in the database container).
func (d *postgres) dumpVersion(ctx context.Context) (string, error) {
	var out bytes.Buffer
	if err := d.r.run(ctx, `exec pg_dump --version`, nil, nil, &out); err != nil {
		return "", fmt.Errorf("pg_dump --version (on %s): %w", d.r.where(), err)
	}
	v := pgVersionRE.FindString(out.String())
	if v == "" {
		return "", fmt.Errorf("pg_dump --version (on %s) answered %q", d.r.where(), strings.TrimSpace(out.String()))
	}
	return v, nil
}

var pgVersionRE = regexp.MustCompile(`[0-9]+(\.[0-9]+)*`)

// pgMajor is a PostgreSQL version's major release as one number: 15 for
// "15.8 (Debian …)", 906 for "9.6.24" (before 10 the major had two parts).
func pgMajor(v string) (int, bool) {
	parts := strings.Split(pgVersionRE.FindString(v), ".")
	first, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, false
	}
	if first >= 10 {
		return first * 100, true
	}
	if len(parts) < 2 {
		return 0, false
	}
	second, err := strconv.Atoi(parts[1])
	return first*100 + second, err == nil
}

// checkDumpVersion fails if the pg_dump the backups run is older than
// the server.
func (d *postgres) checkDumpVersion(ctx context.Context, server string) error {
	tool, err := d.dumpVersion(ctx)
	if err != nil {
		return err
	}
	t, ok1 := pgMajor(tool)
	s, ok2 := pgMajor(server)
	if ok1 && ok2 && t < s {
		return fmt.Errorf("pg_dump %s (on %s) is older than the PostgreSQL %s server and would refuse to dump it: install pg_dump %s or newer (or name its folder in backup.database.pg_bin)",
			tool, d.r.where(), strings.Fields(server)[0], strings.Fields(server)[0])
	}
	return nil
}
