package metrics_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/metrics"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// engine is one engine on the shared store with its own metrics, served
// over HTTP as serve does.
type engine struct {
	t    *testing.T
	eng  *procedures.Engine
	sub  *events.Subscription // the test's own view of the events
	url  string
	stop func()
}

// startEngine's lease is short, so that a second engine takes a run over
// quickly, but not so short that a loaded machine (-race, the test
// servers, other suites) misses a renewal: the engine would then take
// its own run over as interrupted, and never reach the checkpoint.
func startEngine(t *testing.T, st store.Store, w *proctest.World) *engine {
	return startEngineLease(t, st, w, 2*time.Second)
}

func startEngineLease(t *testing.T, st store.Store, w *proctest.World, leaseTTL time.Duration) *engine {
	m := metrics.New("prod")
	m.WatchStore(st)
	c := w.Cluster("prod")
	c.Backups = m.Backups("prod", c.Backups)
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{c}, Log: zerolog.Nop(),
		PollEvery: 20 * time.Millisecond, LeaseTTL: leaseTTL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	watched, ran := make(chan struct{}), make(chan struct{})
	msub := eng.Subscribe()
	go func() { m.Watch(ctx, msub); close(watched) }()
	e := &engine{t: t, eng: eng, sub: eng.Subscribe(), url: srv.URL + "/metrics"}
	go func() { _ = eng.Run(ctx); close(ran) }()
	e.stop = func() {
		cancel()
		<-ran
		<-watched
		e.sub.Close()
		srv.Close()
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
	})
	time.Sleep(10 * time.Millisecond) // let Run set its context up
	return e
}

// scrape reads /metrics into series → value; series are written as the
// exposition writes them, labels sorted by name.
func (e *engine) scrape() map[string]float64 {
	e.t.Helper()
	resp, err := http.Get(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("/metrics: %s %s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			e.t.Fatalf("bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func (e *engine) waitFor(desc string, match func(events.Event) bool) events.Event {
	e.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-e.sub.C:
			if match(ev) {
				return ev
			}
		case <-deadline:
			e.t.Fatalf("no %s within 15 s", desc)
		}
	}
}

func (e *engine) waitCheckpoint() store.Run {
	e.t.Helper()
	return e.waitFor("verify checkpoint", func(ev events.Event) bool {
		return ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == "verify"
	}).Run
}

// settled scrapes until want holds: the metrics read the events on their
// own subscription, a moment after the test's.
func (e *engine) settled(want map[string]float64) map[string]float64 {
	e.t.Helper()
	var got map[string]float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = e.scrape()
		ok := true
		for k, v := range want {
			if got[k] != v {
				ok = false
			}
		}
		if ok {
			return got
		}
	}
	for k, v := range want {
		if got[k] != v {
			e.t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	e.t.FailNow()
	return nil
}

func upgrade(t *testing.T, e *engine, version string) store.Run {
	req, err := procedures.ParseCommand("upgrade " + version)
	if err != nil {
		t.Fatal(err)
	}
	req.Cluster, req.Requester, req.Via = "prod", "UALICE", "terminal"
	r, err := e.eng.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func decide(t *testing.T, e *engine, r store.Run, a store.Action) {
	if _, err := e.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: r.Checkpoint.ID, Action: a, By: "ULEAD", Via: "terminal"}); err != nil {
		t.Fatal(err)
	}
}

// Scraped while runs go on: an upgrade rolled back, one taken over by a
// second engine after the first stopped at its checkpoint and finished
// there. The runs, steps, backups, restores, checkpoint waits, 503
// periods and the takeover all show, each where it happened.
func TestMetricsMoveDuringRuns(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nocobot.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	a := startEngine(t, st, w)

	const (
		started  = `nocobot_runs_started_total{cluster="prod",procedure="upgrade"}`
		rolled   = `nocobot_runs_total{cluster="prod",outcome="rolled_back",procedure="upgrade"}`
		done     = `nocobot_runs_total{cluster="prod",outcome="succeeded",procedure="upgrade"}`
		preStep  = `nocobot_step_duration_seconds_count{cluster="prod",outcome="done",procedure="upgrade",step="preflight"}`
		backups  = `nocobot_backup_bytes_count{cluster="prod",operation="backup"}`
		restores = `nocobot_backup_bytes_count{cluster="prod",operation="restore"}`
		page     = `nocobot_maintenance_page_seconds_count{cluster="prod",procedure="upgrade"}`
		pageSum  = `nocobot_maintenance_page_seconds_sum{cluster="prod",procedure="upgrade"}`
		wait     = `nocobot_checkpoint_wait_seconds_count{cluster="prod",kind="verify",procedure="upgrade"}`
		takeover = `nocobot_lease_takeovers_total{cluster="prod"}`
	)
	before := a.scrape()
	if before[started] != 0 || before["go_goroutines"] == 0 {
		t.Fatalf("fresh metrics: started %v, go_goroutines %v", before[started], before["go_goroutines"])
	}

	r := upgrade(t, a, "1.7.14")
	r = a.waitCheckpoint()
	got := a.settled(map[string]float64{started: 1, preStep: 1, backups: 1, rolled: 0})
	if got[`nocobot_backup_bytes_sum{cluster="prod",operation="backup"}`] <= 0 {
		t.Errorf("backup bytes sum %v, want the backup's size", got[`nocobot_backup_bytes_sum{cluster="prod",operation="backup"}`])
	}
	time.Sleep(30 * time.Millisecond) // a wait long enough to measure
	decide(t, a, r, store.ActionRollback)
	a.waitFor("rolled back", func(ev events.Event) bool {
		return ev.Kind == events.RunFinished && ev.Run.State == store.StateRolledBack
	})
	got = a.settled(map[string]float64{rolled: 1, restores: 1, page: 1, wait: 1})
	if got[pageSum] <= 0 || got[`nocobot_checkpoint_wait_seconds_sum{cluster="prod",kind="verify",procedure="upgrade"}`] < 0.03 {
		t.Errorf("503 period %v s, checkpoint wait %v s: want both measured", got[pageSum], got[`nocobot_checkpoint_wait_seconds_sum{cluster="prod",kind="verify",procedure="upgrade"}`])
	}

	// A second run stops at its checkpoint; its engine goes away and
	// another takes the run over once the lease lapses.
	upgrade(t, a, "1.7.14")
	a.waitCheckpoint()
	a.stop()
	a.stop = nil
	b := startEngine(t, st, w)
	ev := b.waitFor("resumed run", func(ev events.Event) bool { return ev.Kind == events.RunResumed })
	b.settled(map[string]float64{takeover: 1, started: 0})
	r = ev.Run
	if r.Checkpoint == nil {
		t.Fatalf("resumed run has no checkpoint: %+v", r)
	}
	decide(t, b, r, store.ActionContinue)
	b.waitFor("succeeded", func(ev events.Event) bool {
		return ev.Kind == events.RunFinished && ev.Run.State == store.StateSucceeded
	})
	got = b.settled(map[string]float64{done: 1, page: 1, wait: 1, rolled: 0})
	if got[`nocobot_step_duration_seconds_count{cluster="prod",outcome="done",procedure="upgrade",step="start-rest"}`] != 1 {
		t.Errorf("the steps after the checkpoint are not counted on the engine that ran them")
	}
}
