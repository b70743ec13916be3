package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// TestMeasureKinds puts each kind of backup and restore side by side with
// the same work done by hand on the same data, in one run: the in-server
// copy against CREATE DATABASE … TEMPLATE, the folder dump against
// pg_dump -Fd -j N -Z 1, the restores (from the dump as taken, and once
// compressed) against pg_restore -j N into a fresh database, and the
// rollback by swap. The bot's steps include the storage
// archive (taken at the same time) and their checks. Skipped unless
// NOCOBOT_MEASURE_KINDS_MB gives the database size, e.g.:
//
//	NOCOBOT_MEASURE_KINDS_MB=1024 scripts/test -run TestMeasureKinds -v -timeout 60m ./adapters/backup/
//
// NOCOBOT_MEASURE_STORAGE_MB sizes the storage folder (default 256),
// NOCOBOT_MEASURE_ROUNDS the rounds (default 2), NOCOBOT_MEASURE_JOBS the
// workers (default 2).
func TestMeasureKinds(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("NOCOBOT_MEASURE_KINDS_MB"))
	if mb <= 0 {
		t.Skip("set NOCOBOT_MEASURE_KINDS_MB to measure")
	}
	stMB := envInt("NOCOBOT_MEASURE_STORAGE_MB", 256)
	rounds := envInt("NOCOBOT_MEASURE_ROUNDS", 2)
	jobs := envInt("NOCOBOT_MEASURE_JOBS", 2)
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t)
	pgBin := testenv.PostgresBin(t)
	dir := testenv.TempDir(t)
	storage := filepath.Join(dir, "storage")
	nocobaseLikeStorage(t, storage)
	testenv.FillStorage(t, storage, stMB)
	start := time.Now()
	c := connect(t, dbURL)
	nocobaseLikeSchema(t, c, 5, 100)
	dbSize := testenv.FillDatabase(t, dbURL, mb)
	dbName := c.Config().Database
	c.Close(ctx)
	t.Logf("database %s on disk (filled in %s), storage %d MiB", format.Bytes(dbSize), time.Since(start).Round(time.Second), stMB)
	t.Cleanup(func() {
		admin := connect(t, testenv.PostgresURL(t))
		defer admin.Close(ctx)
		rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, dbName+`\_%`)
		if err != nil {
			t.Error(err)
			return
		}
		var left []string
		for rows.Next() {
			var d string
			rows.Scan(&d)
			left = append(left, d)
		}
		rows.Close()
		for _, d := range left {
			execSQL(t, admin, "DROP DATABASE "+sqlIdent(d)+" WITH (FORCE)")
		}
	})

	psql := func(sql string) time.Duration {
		t.Helper()
		s := time.Now()
		if out, err := exec.Command(filepath.Join(pgBin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", testenv.PostgresURL(t), "-c", sql).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", sql, err, out)
		}
		return time.Since(s)
	}
	run := func(name string, args ...string) time.Duration {
		t.Helper()
		s := time.Now()
		if out, err := exec.Command(filepath.Join(pgBin, name), args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", name, err, out)
		}
		return time.Since(s)
	}
	bot := func(what string, f func() error) (time.Duration, int64) {
		t.Helper()
		runtime.GC()
		resetPeakRSS()
		s := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return time.Since(s), peakRSS()
	}

	o := Options{Cluster: "bench", Dest: filepath.Join(dir, "backups"), DBURL: dbURL, PgBin: pgBin, StorageHostPath: storage, Jobs: jobs}
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	o.NoCopy = true
	dumper, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	req := ports.BackupRequest{Cluster: "bench"}
	handDir := filepath.Join(dir, "by-hand")
	var peak int64
	type row struct{ what, bot, hand string }
	var rows []row
	for r := 1; r <= rounds; r++ {
		// In-server copy, and the rollback by swap.
		hc := psql(fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY`, sqlIdent(dbName+"_byhand"), sqlIdent(dbName)))
		psql("DROP DATABASE " + sqlIdent(dbName+"_byhand"))
		var info ports.BackupInfo
		bc, p := bot("copy backup", func() (err error) { info, err = m.Create(ctx, req, nil); return err })
		peak = max(peak, p)
		if info.Kind != KindCopy {
			t.Fatalf("kind %q", info.Kind)
		}
		hs := psql(fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s RENAME TO %s`,
			sqlIdent(dbName), sqlIdent(dbName+"_x"), sqlIdent(dbName+"_x"), sqlIdent(dbName)))
		bs, p := bot("rollback by swap", func() error { return m.Restore(ctx, info.ID, nil) })
		peak = max(peak, p)
		rows = append(rows, row{"in-server copy backup (bot: + storage archive, verified)", bc.String(), "CREATE DATABASE … TEMPLATE: " + hc.String()})
		rows = append(rows, row{"rollback by swap (bot: + storage unpack and swap)", bs.String(), "two ALTER DATABASE … RENAME: " + hs.String()})

		// Export of a copy after traffic is back.
		bc2, p := bot("copy backup", func() (err error) { info, err = m.Create(ctx, req, nil); return err })
		peak = max(peak, p)
		be, p := bot("export", func() (err error) { _, err = m.Export(ctx, info.ID, nil); return err })
		peak = max(peak, p)
		rows = append(rows, row{"export of the copy (folder dump, hashed, checked; copy dropped)", be.String(), "(copy taken in " + bc2.String() + ")"})
		os.RemoveAll(filepath.Join(o.Dest, info.ID))

		// Dump, and restore from it.
		os.RemoveAll(handDir)
		hd := run("pg_dump", "-Fd", "-j", strconv.Itoa(jobs), "-Z", "1", "-f", handDir, "-d", dbURL)
		bd, p := bot("dump backup", func() (err error) { info, err = dumper.Create(ctx, req, nil); return err })
		peak = max(peak, p)
		rows = append(rows, row{fmt.Sprintf("dump backup -Fd -j %d, uncompressed inside the downtime (bot: + storage, hashes, read-back)", jobs), bd.String(), fmt.Sprintf("pg_dump -Fd -j %d -Z 1: %s", jobs, hd)})
		fresh := dbName + "_fresh"
		psql("CREATE DATABASE " + sqlIdent(fresh) + " TEMPLATE template0")
		hr := run("pg_restore", "-j", strconv.Itoa(jobs), "-d", strings.Replace(dbURL, "/"+dbName, "/"+fresh, 1), handDir)
		psql("DROP DATABASE " + sqlIdent(fresh))
		br, p := bot("restore from dump", func() error { return dumper.Restore(ctx, info.ID, nil) })
		peak = max(peak, p)
		rows = append(rows, row{fmt.Sprintf("restore from the dump as taken in the downtime, as a rollback does (bot: pg_restore -j %d into a fresh db + swap, storage at the same time)", jobs), br.String(), fmt.Sprintf("pg_restore -j %d into a fresh db: %s", jobs, hr)})
		bz, p := bot("compress after traffic is back", func() (err error) { _, err = dumper.Export(ctx, info.ID, nil); return err })
		peak = max(peak, p)
		rows = append(rows, row{"compression of that dump once traffic is back (Export)", bz.String(), "-"})
		bc3, p := bot("restore from compressed dump", func() error { return dumper.Restore(ctx, info.ID, nil) })
		peak = max(peak, p)
		rows = append(rows, row{fmt.Sprintf("restore from the compressed dump, as a later restore does (bot: pg_restore -j %d + swap, storage)", jobs), bc3.String(), fmt.Sprintf("pg_restore -j %d into a fresh db: %s", jobs, hr)})
		os.RemoveAll(filepath.Join(o.Dest, info.ID))
		for _, rw := range rows {
			t.Logf("RESULT round %d | %s | bot %s | by hand %s", r, rw.what, rw.bot, rw.hand)
		}
		rows = nil
	}
	t.Logf("RESULT bot peak RSS over all steps: %s", format.Bytes(peak))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
