package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// poller is the outside user: it asks the public URL through nginx over
// and over and counts what it gets.
type poller struct {
	mu     sync.Mutex
	counts map[string]int
	first  map[string]string // kind → first body seen, for the failure message
	// changes is the timeline: each change of what users get.
	changes []string
	last    string
	began   time.Time
	stop    chan struct{}
	done    chan struct{}
}

const maintenanceMark = "We'll be back shortly"

func startPoller(url string) *poller {
	p := &poller{counts: map[string]int{}, first: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{}), began: time.Now()}
	hc := &http.Client{Timeout: 3 * time.Second}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			kind, body := "error", ""
			resp, err := hc.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				switch {
				case resp.StatusCode == 200:
					kind = "200"
				case resp.StatusCode == 503 && strings.Contains(body, maintenanceMark):
					kind = "503 maintenance page"
				case resp.StatusCode == 503:
					kind = "503 from a node"
				default:
					kind = fmt.Sprint(resp.StatusCode)
				}
			} else {
				body = err.Error()
			}
			p.mu.Lock()
			if kind != p.last {
				p.changes = append(p.changes, fmt.Sprintf("%s %s", time.Since(p.began).Round(time.Millisecond), kind))
				p.last = kind
			}
			p.counts[kind]++
			if _, ok := p.first[kind]; !ok {
				p.first[kind] = body
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *poller) finish() (map[string]int, map[string]string) {
	close(p.stop)
	<-p.done
	return p.counts, p.first
}

func (p *poller) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keys []string
	total := 0
	for k, n := range p.counts {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, p.counts[k])
	}
	return fmt.Sprintf("%d requests (%s)", total, strings.Join(parts, ", "))
}

// flakyNormal is the nginx balancer whose switch back to the app nodes
// reports a failure once after removing the flag, as a probe that timed
// out would: traffic is normal, the step failed.
type flakyNormal struct {
	*Nginx
	mu     sync.Mutex
	failed bool
}

func (f *flakyNormal) SetMode(ctx context.Context, mode ports.LBMode) error {
	if err := f.Nginx.SetMode(ctx, mode); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if mode == ports.LBNormal && !f.failed {
		f.failed = true
		return errors.New("switched back to normal, but the public URL could not be checked")
	}
	return nil
}

type trafficWorld struct {
	t       *testing.T
	nodes   *standinCluster
	store   store.Store
	eng     *procedures.Engine
	poll    *poller
	nginxIs nginxServer
	lastRun string
}

func newTrafficWorld(t *testing.T, flaky bool) *trafficWorld {
	nodes := newStandinCluster(t, "nocobase/nocobase:1.0.0", "app-1", "app-2", "app-3")
	ngx := startNginx(t, nodes.addrs())
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ngxLB, err := NewNginx(NginxOptions{FlagPath: ngx.Flag}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	var bal ports.Balancer = ngxLB
	if flaky {
		bal = &flakyNormal{Nginx: ngxLB}
	}
	app := nocobase.New(nocobase.Options{APIKey: "test-key", PollInterval: 50 * time.Millisecond, Settle: 300 * time.Millisecond}, log)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nocobot.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &procedures.Cluster{Name: "prod", Nodes: nodes, App: app, Backups: backupsOf{nodes}, Balancer: bal,
		HealthTimeout: 20 * time.Second, StartParallelism: 0}
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{c}, Log: log, PollEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(10 * time.Millisecond)
	return &trafficWorld{t: t, nodes: nodes, store: st, eng: eng, nginxIs: ngx}
}

func (w *trafficWorld) start(line string) store.Run {
	w.t.Helper()
	req, err := procedures.ParseCommand(line)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Requester, req.Via = "U1", "test"
	r, err := w.eng.Start(context.Background(), req)
	if err != nil {
		w.t.Fatal(err)
	}
	w.lastRun = r.ID
	return r
}

// explain says what a user stuck on the maintenance page would ask: is
// the flag up, what do the nodes do, what did the run's steps say.
func (w *trafficWorld) explain() string {
	var b strings.Builder
	_, err := os.Stat(w.nginxIs.Flag)
	fmt.Fprintf(&b, "flag up: %v; nodes:", err == nil)
	for _, n := range w.nodes.nodes {
		n.mu.Lock()
		fmt.Fprintf(&b, " %s=%d", n.name, n.state)
		n.mu.Unlock()
	}
	if log, err := os.ReadFile(filepath.Join(filepath.Dir(w.nginxIs.MaintDir), "error.log")); err == nil {
		fmt.Fprintf(&b, "\nnginx error.log (end):\n%s", log[max(0, len(log)-1500):])
	}
	if r, err := w.store.GetRun(context.Background(), w.lastRun); err == nil {
		for _, st := range r.Steps {
			fmt.Fprintf(&b, "\n  %s %s: %s", st.Name, st.Status, st.Detail)
		}
	}
	return b.String()
}

// waitFor polls the run until it waits at a checkpoint of kind ("" any
// question) or finishes.
func (w *trafficWorld) waitFor(id, kind string) store.Run {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, err := w.store.GetRun(context.Background(), id)
		if err != nil {
			w.t.Fatal(err)
		}
		if kind == "end" && r.State.Finished() {
			return r
		}
		if kind != "end" && r.Checkpoint != nil && (kind == "" || r.Checkpoint.Kind == kind) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	r, _ := w.store.GetRun(context.Background(), id)
	w.t.Fatalf("run %s: no %s within 60 s: state %s, checkpoint %+v, steps %+v", id, kind, r.State, r.Checkpoint, r.Steps)
	return store.Run{}
}

func (w *trafficWorld) decide(r store.Run, a store.Action) {
	w.t.Helper()
	if _, err := w.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: r.Checkpoint.ID, Action: a, By: "U2", Via: "test"}); err != nil {
		w.t.Fatal(err)
	}
}

// The outside user's view, through a real nginx with the deploy
// configuration, while the procedures stop, start and reload nodes and
// restore: every answer is the app (200) or the maintenance page, never
// nginx's 502 nor a node's own 503.
func TestTrafficUsersNeverSeeANodeError(t *testing.T) {
	cases := []struct {
		name  string
		flaky bool
		run   func(w *trafficWorld)
	}{
		{"maintain plugin enable", false, func(w *trafficWorld) {
			r := w.start("maintain prod plugin enable map")
			w.decide(w.waitFor(r.ID, "verify"), store.ActionContinue)
			w.finished(r.ID, store.StateSucceeded)
		}},
		{"maintain restore", false, func(w *trafficWorld) {
			w.nodes.backups["b0"] = ports.BackupInfo{ID: "b0", Version: "1.0.0", Verified: true}
			r := w.start("maintain prod restore b0")
			w.decide(w.waitFor(r.ID, "verify"), store.ActionContinue)
			w.finished(r.ID, store.StateSucceeded)
		}},
		{"maintain rollback", false, func(w *trafficWorld) {
			r := w.start("maintain prod plugin disable map")
			w.decide(w.waitFor(r.ID, "verify"), store.ActionRollback)
			w.finished(r.ID, store.StateRolledBack)
		}},
		{"upgrade rollback after traffic came back", true, func(w *trafficWorld) {
			r := w.start("upgrade 1.1.0 prod")
			w.decide(w.waitFor(r.ID, "verify"), store.ActionContinue)
			w.decide(w.waitFor(r.ID, "failure"), store.ActionRollback)
			w.finished(r.ID, store.StateRolledBack)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newTrafficWorld(t, tc.flaky)
			w.poll = startPoller(w.nginxIs.URL + "/admin")
			time.Sleep(100 * time.Millisecond)
			tc.run(w)
			// The run is over and every node healthy: users get the app,
			// not a maintenance page left standing. (The bound allows for
			// a loaded machine; a page left standing never clears.)
			ended := time.Now()
			for s := get(t, w.nginxIs.URL+"/admin"); s.status != 200; s = get(t, w.nginxIs.URL+"/admin") {
				if time.Since(ended) > 5*time.Second {
					t.Errorf("%s after the run ended users still get %d %.60q\n%s", time.Since(ended).Round(time.Millisecond), s.status, s.body, w.explain())
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			counts, first := w.poll.finish()
			t.Logf("poller: %s; timeline: %s", w.poll, strings.Join(w.poll.changes, ", "))
			for kind, n := range counts {
				if kind != "200" && kind != "503 maintenance page" {
					t.Errorf("users got %d × %s, e.g. %q", n, kind, first[kind])
				}
			}
			if counts["200"] == 0 {
				t.Error("users never reached the app")
			}
			if p := w.nodes.problems; len(p) > 0 {
				t.Errorf("cluster: %q", p)
			}
		})
	}
}

func (w *trafficWorld) finished(id string, want store.RunState) {
	w.t.Helper()
	r := w.waitFor(id, "end")
	if r.State != want {
		w.t.Fatalf("run ended %s, want %s: %+v", r.State, want, r.Steps)
	}
}
