// Package downtime measures an upgrade's 503 period on real parts against
// its physical limit. It holds only an opt-in measurement.
package downtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/backup"
	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/adapters/lb"
	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// TestMeasureDowntime runs whole upgrades of three stand-in nodes on the
// real Docker engine, with the real backup adapter on a generated
// database of the real PostgreSQL, the verify checkpoint answered at
// once, and prints the 503 period, its parts, and its physical limit
// measured by hand on the same parts (stop + backup + first start +
// slowest other start), for an in-server copy and for a dump. Skipped
// unless NOCOBOT_MEASURE_DOWNTIME_MB gives the database size:
//
//	NOCOBOT_MEASURE_DOWNTIME_MB=1024 scripts/test -run TestMeasureDowntime -v -timeout 60m ./procedures/downtime/
//
// NOCOBOT_MEASURE_BOOT sets the nodes' start times (default
// "3s,2s,2.5s": the first node's start stands for the migration).
func TestMeasureDowntime(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("NOCOBOT_MEASURE_DOWNTIME_MB"))
	if mb <= 0 {
		t.Skip("set NOCOBOT_MEASURE_DOWNTIME_MB to measure")
	}
	boots := strings.Split(envOr("NOCOBOT_MEASURE_BOOT", "3s,2s,2.5s"), ",")
	if len(boots) != 3 {
		t.Fatal("NOCOBOT_MEASURE_BOOT: three durations, one a node")
	}
	host := testenv.DockerHost(t)
	v1 := testenv.NodeImage(t, host, "1.0.0")
	testenv.NodeImage(t, host, "2.0.0")
	dbURL := testenv.NewDatabase(t)
	dir := testenv.TempDir(t)
	storage := filepath.Join(dir, "storage")
	testenv.FillStorage(t, storage, 64)
	began := time.Now()
	size := testenv.FillDatabase(t, dbURL, mb)
	t.Logf("database %d MiB on disk (filled in %s), storage 64 MiB, node starts %s", size>>20, time.Since(began).Round(time.Second), strings.Join(boots, ", "))

	var rows []row
	for _, kind := range []string{backup.KindCopy, backup.KindDump} {
		label := fmt.Sprintf("dt-%s-%d", kind, os.Getpid())
		var names []string
		for i, b := range boots {
			n := testenv.RunNode(t, host, testenv.NodeSpec{Name: fmt.Sprintf("%s-app-%d", label, i+1), Image: v1,
				Labels: map[string]string{"nocobot.bench": label}, Env: []string{"NOCOBASE_BOOT_TIME=" + b}})
			names = append(names, n.Name)
		}
		waitAllHealthy(t, host, names)
		bot := runUpgrade(t, host, label, kind, dbURL, storage, filepath.Join(dir, kind))
		limit := byHand(t, host, names, kind, dbURL, storage)
		rows = append(rows, row{kind: kind, bot: bot, limit: limit})
		testenv.RemoveLabelled(host, "nocobot.bench="+label)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n503 period of an upgrade, 3 stand-in nodes (starts %s), database %d MiB, storage 64 MiB\n", strings.Join(boots, ", "), size>>20)
	fmt.Fprintf(&b, "%-6s %-38s %9s %9s\n", "kind", "part", "bot", "limit")
	for _, r := range rows {
		for _, p := range r.bot.parts {
			fmt.Fprintf(&b, "%-6s %-38s %9s %9s\n", r.kind, p.name, sec(p.d), sec(r.limit[p.name]))
		}
		var sum time.Duration
		for _, d := range r.limit {
			sum += d
		}
		fmt.Fprintf(&b, "%-6s %-38s %9s %9s  (×%.2f)\n", r.kind, "503 period", sec(r.bot.downtime), sec(sum), r.bot.downtime.Seconds()/sum.Seconds())
		fmt.Fprintf(&b, "%-6s %-38s %9s\n", r.kind, "export after traffic is back", sec(r.bot.export))
	}
	t.Log(b.String())
}

type part struct {
	name string
	d    time.Duration
}

type measured struct {
	parts    []part
	downtime time.Duration
	export   time.Duration
}

type row struct {
	kind  string
	bot   measured
	limit map[string]time.Duration
}

func sec(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// partNames maps the upgrade's steps inside the 503 period to the parts
// of the physical limit ("" where the limit has no such part).
var partNames = []struct{ step, part string }{
	{"lb-maintenance", "lb to 503"},
	{"stop-nodes", "stop"},
	{"backup", "backup"},
	{"set-image", "set image"},
	{"start-first", "first start"},
	{"verify", "verify (auto-continue)"},
	{"start-rest", "rest together"},
	{"lb-normal", "lb back"},
}

// runUpgrade upgrades the labelled nodes to 2.0.0 with the engine and the
// real adapters, continuing at the checkpoint at once.
func runUpgrade(t *testing.T, host, label, kind, dbURL, storage, dest string) measured {
	t.Helper()
	log := zerolog.Nop()
	nodes, err := docker.New(docker.Options{EngineOptions: docker.EngineOptions{Host: host}, Labels: map[string]string{"nocobot.bench": label},
		StopTimeout: 10 * time.Second, PullPolicy: docker.PullNever}, log)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := backup.New(backup.Options{Cluster: "bench", Dest: dest, DBURL: dbURL, PgBin: testenv.PostgresBin(t), StorageHostPath: storage,
		NoCopy: kind == backup.KindDump, Jobs: 2}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	bal, err := lb.NewNone(lb.ProbeOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	c := &procedures.Cluster{Name: "bench", Nodes: nodes, App: nocobase.New(nocobase.Options{}, log), Backups: bk, Balancer: bal}
	st, err := sqlite.Open(context.Background(), filepath.Join(testenv.TempDir(t), "nocobot.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{c}, Log: log, PollEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sub := eng.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(10 * time.Millisecond)
	began := time.Now()
	run, err := eng.Start(ctx, procedures.Request{Cluster: "bench", Procedure: procedures.ProcUpgrade, Version: "2.0.0", Requester: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	var end store.Run
	for end.ID == "" {
		select {
		case ev := <-sub.C:
			switch {
			case ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == "verify":
				if _, err := eng.Decide(ctx, store.Decision{RunID: run.ID, Checkpoint: ev.Run.Checkpoint.ID, Action: store.ActionContinue, By: "bench", Via: "bench"}); err != nil {
					t.Fatal(err)
				}
			case ev.Kind == events.Checkpoint:
				t.Fatalf("run stopped: %s", ev.Run.Checkpoint.Question)
			case ev.Kind == events.RunFinished:
				end = ev.Run
			case ev.Kind == events.StepProgress && (strings.Contains(ev.Message, "backup kind") || strings.Contains(ev.Message, "in-server copy failed") ||
				strings.HasPrefix(ev.Message, "database: ") || strings.HasPrefix(ev.Message, "storage: ")):
				t.Logf("%s round, %s: %s", kind, time.Since(began).Round(10*time.Millisecond), ev.Message)
			}
		case <-ctx.Done():
			t.Fatal("the upgrade did not finish")
		}
	}
	if end.State != store.StateSucceeded {
		t.Fatalf("upgrade %s: %s", end.State, end.Error)
	}
	var m measured
	steps := map[string]store.Step{}
	for _, s := range end.Steps {
		steps[s.Name] = s
	}
	if b := steps["backup"]; !b.Started.IsZero() {
		t.Logf("%s round: the backup step ran from %s to %s (times since the run's start, as above)", kind,
			b.Started.Sub(began).Round(10*time.Millisecond), b.Ended.Sub(began).Round(10*time.Millisecond))
	}
	for i, pn := range partNames {
		s := steps[pn.step]
		d := s.Ended.Sub(s.Started)
		if i > 0 {
			// What lies between two steps (the engine's own records) is
			// counted with the step that follows.
			prev := steps[partNames[i-1].step]
			d = s.Ended.Sub(prev.Ended)
		}
		m.parts = append(m.parts, part{pn.part, d})
	}
	m.downtime, _ = procedures.Downtime(end)
	ex := steps["export"]
	m.export = ex.Ended.Sub(ex.Started)
	wantKind := "in-server copy"
	if kind == backup.KindDump {
		wantKind = "a dump"
	}
	if !strings.Contains(steps["backup"].Detail, wantKind) {
		t.Errorf("%s round: backup step says %q", kind, steps["backup"].Detail)
	}
	t.Logf("%s round: backup %q; export %q", kind, steps["backup"].Detail, ex.Detail)
	return m
}

// byHand measures the physical limit's parts on the same nodes, now on
// 2.0.0: stop every node at once, the backup as an operator would take it
// (CREATE DATABASE … TEMPLATE, or pg_dump -Fd -j 2 -Z 1; tar of the
// storage at the same time), the first node's
// start until healthy, then the others together until the slowest is.
func byHand(t *testing.T, host string, names []string, kind, dbURL, storage string) map[string]time.Duration {
	t.Helper()
	limit := map[string]time.Duration{}
	t0 := time.Now()
	testenv.Docker(t, host, append([]string{"stop", "-t", "10"}, names...)...)
	limit["stop"] = time.Since(t0)

	ctx := context.Background()
	t0 = time.Now()
	// The storage archive is taken at the same time as the database.
	tarDone := make(chan time.Duration, 1)
	go func() {
		t1 := time.Now()
		cmd := exec.Command("tar", "-C", storage, "-cf", filepath.Join(testenv.TempDir(t), "storage.tar"), ".")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("tar by hand: %v %s", err, b)
		}
		tarDone <- time.Since(t1)
	}()
	if kind == backup.KindCopy {
		name := dbName(dbURL)
		admin := connect(t, testenv.PostgresURL(t))
		exec1(t, admin, fmt.Sprintf("CREATE DATABASE %s_byhand TEMPLATE %s STRATEGY FILE_COPY", name, name))
		limit["backup"] = time.Since(t0)
		// The test server runs with fsync=off, so its copy is not on disk
		// yet; the bot fsyncs its storage archive, which on a journalling
		// file system can write the server's copy out too. What a durable
		// copy by hand costs:
		syscall.Sync()
		t.Logf("copy round: by hand, CREATE DATABASE … TEMPLATE and then sync: %s", time.Since(t0).Round(10*time.Millisecond))
		exec1(t, admin, fmt.Sprintf("DROP DATABASE %s_byhand", name))
		admin.Close(ctx)
	} else {
		out := filepath.Join(testenv.TempDir(t), "byhand.dir")
		cmd := exec.Command(filepath.Join(testenv.PostgresBin(t), "pg_dump"), "-Fd", "-j", "2", "-Z", "1", "-f", out, "-d", dbURL)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pg_dump by hand: %v %s", err, b)
		}
		limit["backup"] = time.Since(t0)
		os.RemoveAll(out)
	}

	limit["backup"] = max(limit["backup"], <-tarDone)

	t0 = time.Now()
	testenv.Docker(t, host, "start", names[0])
	waitAllHealthy(t, host, names[:1])
	limit["first start"] = time.Since(t0)
	t0 = time.Now()
	testenv.Docker(t, host, append([]string{"start"}, names[1:]...)...)
	waitAllHealthy(t, host, names[1:])
	limit["rest together"] = time.Since(t0)
	return limit
}

// waitAllHealthy polls the nodes' health checks every 10 ms until all
// answer ok.
func waitAllHealthy(t *testing.T, host string, names []string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range names {
		url := testenv.Docker(t, host, "inspect", "--format", `{{index .Config.Labels "nocobot.url"}}`, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := nocobase.New(nocobase.Options{PollInterval: 10 * time.Millisecond}, zerolog.Nop())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := c.WaitHealthy(ctx, ports.Node{Name: n, URL: url}, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func dbName(u string) string {
	name, _, _ := strings.Cut(u[strings.LastIndex(u, "/")+1:], "?")
	return name
}

func connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exec1(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
