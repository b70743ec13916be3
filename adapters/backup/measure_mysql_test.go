package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// TestMeasureMySQL compares a MariaDB backup and restore with mariadb-dump
// and mariadb run by hand on the same database, and records the bot's peak
// memory during both. It is skipped unless NOCOBOT_MEASURE_MYSQL_MB gives
// the size of the generated data, e.g.:
//
//	NOCOBOT_MEASURE_MYSQL_MB=1024 scripts/test -run TestMeasureMySQL -v -timeout 60m ./adapters/backup/
func TestMeasureMySQL(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("NOCOBOT_MEASURE_MYSQL_MB"))
	if mb <= 0 {
		t.Skip("set NOCOBOT_MEASURE_MYSQL_MB to measure")
	}
	rounds, _ := strconv.Atoi(os.Getenv("NOCOBOT_MEASURE_ROUNDS"))
	rounds = max(rounds, 3)
	ctx := context.Background()
	bin, sock := testenv.MySQLBin(t), testenv.MySQLSocket(t)

	// Rows of the large tables are about 1.4 KiB on disk (JSON, a 1 KiB
	// text, a summary, an index).
	const tables = 4
	start := time.Now()
	f := newMySQLFixture(t, mysqlShape{Small: 300, SmallRows: 3, Big: tables, BigRows: mb * 730 / tables, TextBytes: 1024})
	size := testenv.MySQLExec(t, "", "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = '"+f.db+"'")
	dbSize, _ := strconv.ParseInt(size, 10, 64)
	t.Logf("database: %s on disk (data and indexes) in %d tables, filled in %s", format.Bytes(dbSize), 300+tables+9, time.Since(start).Round(time.Second))

	dir := testenv.TempDir(t)
	byHandFile := filepath.Join(dir, "by-hand.sql")
	handDump := func() time.Duration {
		out, err := os.Create(byHandFile)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd := exec.Command(filepath.Join(bin, "mariadb-dump"), "--no-defaults", "-S", sock, "-uroot",
			"--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob", f.db)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = out, &stderr
		s := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("mariadb-dump by hand: %v %s", err, stderr.String())
		}
		if err := out.Sync(); err != nil {
			t.Fatal(err)
		}
		return time.Since(s)
	}
	handRestore := func() time.Duration {
		db := f.db + "_byhand"
		testenv.MySQLExec(t, "", "DROP DATABASE IF EXISTS `"+db+"`; CREATE DATABASE `"+db+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
		defer testenv.MySQLExec(t, "", "DROP DATABASE IF EXISTS `"+db+"`")
		in, err := os.Open(byHandFile)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		cmd := exec.Command(filepath.Join(bin, "mariadb"), "--no-defaults", "-S", sock, "-uroot", "--binary-mode", db)
		var stderr strings.Builder
		cmd.Stdin, cmd.Stderr = in, &stderr
		s := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("mariadb by hand: %v %s", err, stderr.String())
		}
		return time.Since(s)
	}
	handDump() // warm the cache the same way for both

	opts := f.localOptions(t, "", "")
	opts.Cluster, opts.Dest = "bench", filepath.Join(dir, "backups")
	m, err := New(opts, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var hand, bot []time.Duration
	var botPeak int64
	var id string
	var dumpSize int64
	for i := range rounds {
		hd := handDump()
		hand = append(hand, hd)
		runtime.GC()
		resetPeakRSS()
		s := time.Now()
		info, err := m.Create(ctx, ports.BackupRequest{Cluster: "bench", Version: "bench"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		bd := time.Since(s)
		bot = append(bot, bd)
		botPeak = max(botPeak, peakRSS())
		man := readManifest(t, opts.Dest, info.ID)
		dumpSize = partSize(&man, partDatabase)
		t.Logf("round %d: mariadb-dump by hand %s, bot backup %s (dump %s, with storage and the check), bot peak RSS %s",
			i+1, hd.Round(10*time.Millisecond), bd.Round(10*time.Millisecond), format.Bytes(dumpSize), format.Bytes(peakRSS()))
		if id != "" {
			os.RemoveAll(filepath.Join(opts.Dest, id))
		}
		id = info.ID
	}
	t.Logf("RESULT backup: db %s, dump %s: mariadb-dump by hand median %s, bot median %s, ratio bot/hand %.2f; bot peak RSS %s",
		format.Bytes(dbSize), format.Bytes(dumpSize), median(hand), median(bot), median(bot).Seconds()/median(hand).Seconds(), format.Bytes(botPeak))
	measureMariaBackup(t, f.db, sock, dir, rounds)

	var handR, botR []time.Duration
	var restorePeak int64
	for i := range rounds {
		hr := handRestore()
		handR = append(handR, hr)
		runtime.GC()
		resetPeakRSS()
		s := time.Now()
		if err := m.Restore(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
		br := time.Since(s)
		botR = append(botR, br)
		restorePeak = max(restorePeak, peakRSS())
		t.Logf("round %d: mariadb by hand into a fresh database %s, bot restore %s (checksums, load, swap, storage)",
			i+1, hr.Round(10*time.Millisecond), br.Round(10*time.Millisecond))
	}
	t.Logf("RESULT restore: by hand median %s, bot median %s, ratio bot/hand %.2f; bot peak RSS %s",
		median(handR), median(botR), median(botR).Seconds()/median(handR).Seconds(), format.Bytes(restorePeak))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Millisecond)
}

// measureMariaBackup times mariadb-backup (MariaDB's physical, parallel
// copy of InnoDB files, its own Debian package) streaming the same
// database, when it is installed: the candidate for a faster backup.
func measureMariaBackup(t *testing.T, db, sock, dir string, rounds int) {
	tool, err := exec.LookPath("mariadb-backup")
	if err != nil {
		t.Log("mariadb-backup is not installed: not measured")
		return
	}
	var times []time.Duration
	var size int64
	for range rounds {
		target := filepath.Join(dir, "mariabackup")
		os.RemoveAll(target)
		out, err := os.Create(filepath.Join(dir, "mariabackup.xb"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tool, "--no-defaults", "--backup", "--stream=xbstream", "--parallel=2", "--databases="+db,
			"--socket="+sock, "--user=root", "--target-dir="+target)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = out, &stderr
		s := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("mariadb-backup: %v %s", err, stderr.String()[max(0, stderr.Len()-2000):])
		}
		out.Sync()
		times = append(times, time.Since(s))
		fi, _ := out.Stat()
		size = fi.Size()
		out.Close()
		os.Remove(out.Name())
	}
	t.Logf("RESULT mariadb-backup --parallel=2 (stream %s): median %s", format.Bytes(size), median(times))
}
