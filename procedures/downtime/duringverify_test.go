package downtime

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/backup"
	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/adapters/lb"
	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// TestMeasureDowntimeDuringVerify runs whole upgrades of three stand-in
// nodes with the verify checkpoint answered after a check of
// NOCOBOT_MEASURE_CHECK (default 30s), with start during verify off and
// on, behind a stand-in load balancer (a flag file: 503; else the first
// node that answers) that an outside poller asks every 10 ms. It prints
// the 503 period the poller saw, the time from continue to the first 200,
// and the physical limit: the parts measured by hand on the same nodes
// (stop + in-server copy + first start + check + the others' start, or
// with the option the longer of the check and the others' start).
// Skipped unless NOCOBOT_MEASURE_DOWNTIME_MB gives the database size:
//
//	NOCOBOT_MEASURE_DOWNTIME_MB=256 scripts/test -run TestMeasureDowntimeDuringVerify -v -timeout 60m ./procedures/downtime/
func TestMeasureDowntimeDuringVerify(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("NOCOBOT_MEASURE_DOWNTIME_MB"))
	if mb <= 0 {
		t.Skip("set NOCOBOT_MEASURE_DOWNTIME_MB to measure")
	}
	check, err := time.ParseDuration(envOr("NOCOBOT_MEASURE_CHECK", "30s"))
	if err != nil {
		t.Fatal(err)
	}
	boots := strings.Split(envOr("NOCOBOT_MEASURE_BOOT", "3s,2s,2.5s"), ",")
	host := testenv.DockerHost(t)
	v1 := testenv.NodeImage(t, host, "1.0.0")
	testenv.NodeImage(t, host, "2.0.0")
	dbURL := testenv.NewDatabase(t)
	dir := testenv.TempDir(t)
	storage := filepath.Join(dir, "storage")
	testenv.FillStorage(t, storage, 64)
	size := testenv.FillDatabase(t, dbURL, mb)

	var b strings.Builder
	fmt.Fprintf(&b, "\n503 period of an upgrade with a %s check, 3 stand-in nodes (starts %s), database %d MiB, in-server copy\n",
		check, strings.Join(boots, ", "), size>>20)
	fmt.Fprintf(&b, "%-22s %10s %10s %8s %22s\n", "start during verify", "503 (poll)", "limit", "ratio", "continue → first 200")
	for _, early := range []bool{false, true} {
		label := fmt.Sprintf("dv-%v-%d", early, os.Getpid())
		var names, urls []string
		for i, bt := range boots {
			n := testenv.RunNode(t, host, testenv.NodeSpec{Name: fmt.Sprintf("%s-app-%d", label, i+1), Image: v1,
				Labels: map[string]string{"nocobot.bench": label}, Env: []string{"NOCOBASE_BOOT_TIME=" + bt}})
			names, urls = append(names, n.Name), append(urls, n.URL)
		}
		waitAllHealthy(t, host, names)
		flag := filepath.Join(testenv.TempDir(t), "maintenance.on")
		front := httptest.NewServer(standInLB(flag, urls))
		p := startPoller(front.URL + "/api/__health_check")
		decided := runUpgradeChecking(t, host, label, dbURL, storage, filepath.Join(dir, label), flag, check, early)
		polls := p.stop()
		front.Close()
		down, back := outage(polls, decided)
		parts := byHand(t, host, names, backup.KindCopy, dbURL, storage)
		limit := parts["stop"] + parts["backup"] + parts["first start"] + check + parts["rest together"]
		if early {
			limit = parts["stop"] + parts["backup"] + parts["first start"] + max(check, parts["rest together"])
		}
		t.Logf("early %v: by hand stop %s, copy %s, first %s, the others %s", early, sec(parts["stop"]), sec(parts["backup"]), sec(parts["first start"]), sec(parts["rest together"]))
		fmt.Fprintf(&b, "%-22s %10s %10s %8.2f %22s\n", map[bool]string{false: "off", true: "on"}[early], sec(down), sec(limit), down.Seconds()/limit.Seconds(), sec(back))
		testenv.RemoveLabelled(host, "nocobot.bench="+label)
	}
	t.Log(b.String())
}

// standInLB answers 503 while flag exists, else passes the request to
// the first node that answers 200 (as nginx with proxy_next_upstream),
// else 503.
func standInLB(flag string, nodes []string) http.Handler {
	c := &http.Client{Timeout: time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(flag); err == nil {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		for _, n := range nodes {
			resp, err := c.Get(n + r.URL.Path)
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				w.Write(body)
				return
			}
		}
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
}

type poll struct {
	at   time.Time
	code int
}

type poller struct {
	mu    sync.Mutex
	polls []poll
	quit  chan struct{}
	done  chan struct{}
}

// startPoller asks url every 10 ms, as a user would, until stopped.
func startPoller(url string) *poller {
	p := &poller{quit: make(chan struct{}), done: make(chan struct{})}
	c := &http.Client{Timeout: time.Second}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			at, code := time.Now(), 0
			if resp, err := c.Get(url); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			p.mu.Lock()
			p.polls = append(p.polls, poll{at, code})
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *poller) stop() []poll {
	close(p.quit)
	<-p.done
	return p.polls
}

// outage is the span from the first poll that was not 200 to the first
// 200 after it, and the time from decided to the first 200 after it.
func outage(polls []poll, decided time.Time) (down, back time.Duration) {
	var first time.Time
	for _, p := range polls {
		if p.code != http.StatusOK && first.IsZero() {
			first = p.at
		}
		if p.code == http.StatusOK && !first.IsZero() && p.at.After(decided) {
			return p.at.Sub(first), p.at.Sub(decided)
		}
	}
	return 0, 0
}

// runUpgradeChecking upgrades the labelled nodes to 2.0.0, answering the
// verify checkpoint with continue check after it opened; it returns when
// continue was recorded.
func runUpgradeChecking(t *testing.T, host, label, dbURL, storage, dest, flag string, check time.Duration, early bool) time.Time {
	t.Helper()
	log := zerolog.Nop()
	nodes, err := docker.New(docker.Options{EngineOptions: docker.EngineOptions{Host: host}, Labels: map[string]string{"nocobot.bench": label},
		StopTimeout: 10 * time.Second, PullPolicy: docker.PullNever}, log)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := backup.New(backup.Options{Cluster: "bench", Dest: dest, DBURL: dbURL, PgBin: testenv.PostgresBin(t), StorageHostPath: storage, Jobs: 2}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	bal, err := lb.NewNginx(lb.NginxOptions{FlagPath: flag}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	c := &procedures.Cluster{Name: "bench", Nodes: nodes, App: nocobase.New(nocobase.Options{PollInterval: 50 * time.Millisecond}, log),
		Backups: bk, Balancer: bal, NodeEnv: nodes.NodeEnv(), PerNodeEnv: []string{"NOCOBASE_BOOT_TIME"}, CheckpointTimeout: time.Hour}
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
	run, err := eng.Start(ctx, procedures.Request{Cluster: "bench", Procedure: procedures.ProcUpgrade, Version: "2.0.0", Requester: "bench", StartDuringVerify: &early})
	if err != nil {
		t.Fatal(err)
	}
	var decided time.Time
	for {
		select {
		case ev := <-sub.C:
			switch {
			case ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == "verify":
				time.Sleep(check)
				decided = time.Now()
				if _, err := eng.Decide(ctx, store.Decision{RunID: run.ID, Checkpoint: ev.Run.Checkpoint.ID, Action: store.ActionContinue, By: "bench", Via: "bench"}); err != nil {
					t.Fatal(err)
				}
			case ev.Kind == events.Checkpoint:
				t.Fatalf("run stopped: %s", ev.Run.Checkpoint.Question)
			case ev.Kind == events.RunFinished:
				if ev.Run.State != store.StateSucceeded {
					t.Fatalf("upgrade %s: %s", ev.Run.State, ev.Run.Error)
				}
				for _, s := range ev.Run.Steps {
					if s.Name == "start-rest" {
						t.Logf("early %v: start-rest %q", early, s.Detail)
					}
				}
				return decided
			}
		case <-ctx.Done():
			t.Fatal("the upgrade did not finish")
		}
	}
}
