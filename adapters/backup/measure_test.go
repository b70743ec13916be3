package backup

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// TestMeasure compares a backup's throughput with pg_dump -Fc run by hand
// on the same database, and records the bot's peak memory and the restore
// time. It is skipped unless NOCOBOT_MEASURE_MB gives the database size,
// e.g.:
//
//	NOCOBOT_MEASURE_MB=1024 scripts/test -run TestMeasure -v -timeout 60m ./adapters/backup/
//
// NOCOBOT_MEASURE_MODE=docker measures the exec mode against a real
// engine (pg_dump by hand then also runs through docker exec).
func TestMeasure(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("NOCOBOT_MEASURE_MB"))
	if mb <= 0 {
		t.Skip("set NOCOBOT_MEASURE_MB to measure")
	}
	mode := os.Getenv("NOCOBOT_MEASURE_MODE")
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t)
	pgBin := testenv.PostgresBin(t)
	dir := testenv.TempDir(t)
	storage := filepath.Join(dir, "storage")
	nocobaseLikeStorage(t, storage)

	start := time.Now()
	sc := connect(t, dbURL)
	nocobaseLikeSchema(t, sc, 5, 100)
	sc.Close(ctx)
	dbSize := testenv.FillDatabase(t, dbURL, mb)
	t.Logf("database: %s on disk, filled in %s", format.Bytes(dbSize), time.Since(start).Round(time.Second))

	opts := Options{Cluster: "bench", Dest: filepath.Join(dir, "backups"), DBURL: dbURL, PgBin: pgBin, StorageHostPath: storage,
		NoCopy: true, DumpFormat: FormatStream} // the same format as by hand
	var containers Containers
	byHand := []string{filepath.Join(pgBin, "pg_dump"), "-Fc", "-d", dbURL}
	if mode == "docker" {
		e, host := engine(t)
		containers = e
		db := runDBContainer(t, host)
		u, _ := url.Parse(dbURL)
		port, _ := strconv.Atoi(u.Port())
		opts.DBURL, opts.PgBin = "", ""
		opts.DBContainer, opts.DBName, opts.DBUser, opts.DBHost, opts.DBPort = db, strings.TrimPrefix(u.Path, "/"), "postgres", "127.0.0.1", port
		byHand = []string{"docker", "-H", host, "exec", db, "pg_dump", "-Fc", "-d",
			fmt.Sprintf("dbname=%s user=postgres host=127.0.0.1 port=%d", opts.DBName, port)}
	}

	// Warm the cache the same way for both: one untimed dump.
	handDump := func() (time.Duration, int64) {
		out := filepath.Join(dir, "by-hand.dump")
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(out)
		cmd := exec.Command(byHand[0], byHand[1:]...)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = f, &stderr
		s := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("pg_dump by hand: %v %s", err, stderr.String())
		}
		d := time.Since(s)
		f.Sync()
		fi, _ := f.Stat()
		f.Close()
		return d, fi.Size()
	}
	handDump()

	m, err := New(opts, containers, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var handBest, botBest time.Duration
	var botPeak int64
	var handSize int64
	var id string
	rounds, _ := strconv.Atoi(os.Getenv("NOCOBOT_MEASURE_ROUNDS"))
	rounds = max(rounds, 3)
	for i := 0; i < rounds; i++ {
		d, size := handDump()
		handSize = size
		if handBest == 0 || d < handBest {
			handBest = d
		}
		runtime.GC()
		resetPeakRSS()
		stop := sampleHeap()
		s := time.Now()
		info, err := m.Create(ctx, ports.BackupRequest{Cluster: "bench", Version: "bench"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		bd := time.Since(s)
		heap := stop()
		peak := peakRSS()
		if botBest == 0 || bd < botBest {
			botBest = bd
		}
		botPeak = max(botPeak, peak)
		t.Logf("round %d: pg_dump by hand %s (%s), bot backup %s (%s, incl. storage and read-back), bot peak RSS %s, peak Go heap %s",
			i+1, d.Round(10*time.Millisecond), format.Bytes(size), bd.Round(10*time.Millisecond), format.Bytes(info.Size), format.Bytes(peak), format.Bytes(heap))
		if id != "" {
			os.RemoveAll(filepath.Join(opts.Dest, id))
		}
		id = info.ID
	}
	t.Logf("RESULT mode=%s db=%s dump=%s: throughput ratio (pg_dump by hand time / bot time, best of %d) = %.3f; bot peak RSS %s",
		nonEmptyMode(mode), format.Bytes(dbSize), format.Bytes(handSize), rounds, handBest.Seconds()/botBest.Seconds(), format.Bytes(botPeak))

	resetPeakRSS()
	s := time.Now()
	if err := m.Restore(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("RESULT restore of %s (checksums, database in one transaction, storage) took %s; bot peak RSS %s",
		format.Bytes(dbSize), time.Since(s).Round(100*time.Millisecond), format.Bytes(peakRSS()))
}

func nonEmptyMode(m string) string {
	if m == "" {
		return "local"
	}
	return m
}

// resetPeakRSS resets the kernel's high-water mark of this process's
// resident memory (VmHWM).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// sampleHeap samples the Go heap every 50 ms until the returned func is
// called, which returns the peak.
func sampleHeap() func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if int64(ms.HeapInuse) > peak.Load() {
				peak.Store(int64(ms.HeapInuse))
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); wg.Wait(); return peak.Load() }
}
