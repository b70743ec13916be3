package metrics_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/metrics"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// observer is a process on the store that drives no run: its metrics
// know of the runs only what the store says.
func observer(t *testing.T, path string) *engine {
	st, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := metrics.New("prod")
	m.WatchStore(st)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return &engine{t: t, url: srv.URL}
}

// A run waiting at its checkpoint shows in the waiting series of the
// process that drives it and of one that only shares the store (another
// process, or this one restarted), with how long it has waited; once
// decided and finished it shows in neither.
func TestWaitingRunsReadFromTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	st, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	// No takeover here: a lease that a loaded machine cannot lapse.
	a := startEngineLease(t, st, w, 15*time.Second)
	other := observer(t, path)

	const (
		waiting = `nocobot_runs_waiting{cluster="prod",kind="verify",procedure="upgrade"}`
		waited  = `nocobot_runs_waiting_seconds{cluster="prod",kind="verify",procedure="upgrade"}`
		manual  = `nocobot_runs_waiting{cluster="prod",kind="manual",procedure="maintain"}`
	)
	for _, e := range []*engine{a, other} {
		got := e.scrape()
		if v, ok := got[waiting]; !ok || v != 0 {
			t.Fatalf("before any run: %s = %v (present %v), want 0", waiting, v, ok)
		}
		if v, ok := got[manual]; !ok || v != 0 {
			t.Fatalf("before any run: %s = %v (present %v), want 0", manual, v, ok)
		}
		if got["nocobot_store_up"] != 1 {
			t.Fatalf("nocobot_store_up = %v", got["nocobot_store_up"])
		}
	}

	upgrade(t, a, "1.7.14")
	r := a.waitCheckpoint()
	time.Sleep(1100 * time.Millisecond)
	for name, e := range map[string]*engine{"driving process": a, "other process": other} {
		got := e.scrape()
		if got[waiting] != 1 {
			t.Errorf("%s: %s = %v, want 1", name, waiting, got[waiting])
		}
		if got[waited] < 1 || got[waited] > 60 {
			t.Errorf("%s: %s = %v, want the seconds since the checkpoint opened (≥ 1)", name, waited, got[waited])
		}
	}
	decide(t, a, r, store.ActionContinue)
	a.waitFor("succeeded", func(ev events.Event) bool {
		return ev.Kind == events.RunFinished && ev.Run.State == store.StateSucceeded
	})
	for name, e := range map[string]*engine{"driving process": a, "other process": other} {
		if got := e.scrape(); got[waiting] != 0 || got[waited] != 0 {
			t.Errorf("%s after the decision: waiting %v, waited %v; want 0 and 0", name, got[waiting], got[waited])
		}
	}
}

// A store that cannot answer leaves the waiting series out and says so,
// rather than claiming nothing waits; the rest of /metrics still serves.
func TestWaitingRunsStoreDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	st, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("prod")
	m.WatchStore(st)
	st.Close()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	got := (&engine{t: t, url: srv.URL}).scrape()
	if v, ok := got["nocobot_store_up"]; !ok || v != 0 {
		t.Errorf("nocobot_store_up = %v (present %v), want 0", v, ok)
	}
	for k := range got {
		if strings.HasPrefix(k, "nocobot_runs_waiting") {
			t.Errorf("%s reported while the store is down", k)
		}
	}
	if _, ok := got[`nocobot_runs_total{cluster="prod",outcome="aborted",procedure="upgrade"}`]; !ok {
		t.Error("the counters are missing while the store is down")
	}
}

// Every counter a rule or a dashboard uses exists at zero before anything
// happens, with the cluster label on run metrics; the build is described.
func TestCountersExistAtStart(t *testing.T) {
	m := metrics.New("prod", "staging")
	m.Webhooks("oncall")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	got := (&engine{t: t, url: srv.URL}).scrape()
	for _, k := range []string{
		`nocobot_runs_started_total{cluster="staging",procedure="maintain"}`,
		`nocobot_runs_total{cluster="prod",outcome="aborted",procedure="upgrade"}`,
		`nocobot_runs_total{cluster="staging",outcome="rolled_back",procedure="start"}`,
		`nocobot_lease_takeovers_total{cluster="prod"}`,
		`nocobot_backup_failures_total{cluster="staging",operation="restore"}`,
		`nocobot_window_events_total{kind="missed"}`,
		`nocobot_window_events_total{kind="announced"}`,
		`nocobot_webhook_deliveries_total{outcome="failed",webhook="oncall"}`,
		`nocobot_webhook_deliveries_total{outcome="dropped",webhook="oncall"}`,
		`nocobot_metrics_events_missed_total`,
	} {
		if v, ok := got[k]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 from the start", k, v, ok)
		}
	}
	var build string
	for k, v := range got {
		if strings.HasPrefix(k, "nocobot_build_info{") && v == 1 {
			build = k
		}
	}
	if build == "" || !strings.Contains(build, `version="`) || !strings.Contains(build, `goversion="go`) {
		t.Errorf("nocobot_build_info: %q", build)
	}
}

// The newest verified backup's time is read from the backups themselves:
// a process that took none still reports the one another process took.
func TestNewestVerifiedBackup(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1")
	m := metrics.New("prod")
	m.Backups("prod", w.Cluster("prod").Backups)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	e := &engine{t: t, url: srv.URL}
	const newest = `nocobot_backup_newest_verified_timestamp_seconds{cluster="prod"}`
	if got := e.scrape(); got[newest] != 0 || got[`nocobot_backup_list_up{cluster="prod"}`] != 1 {
		t.Fatalf("no backup yet: %s = %v, list_up %v", newest, got[newest], got[`nocobot_backup_list_up{cluster="prod"}`])
	}
	before := time.Now()
	if _, err := w.Cluster("prod").Backups.Create(context.Background(), ports.BackupRequest{Cluster: "prod", Version: "1.7.13"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	got := e.scrape()[newest]
	if got < float64(before.Unix())-1 || got > float64(time.Now().Unix())+1 {
		t.Errorf("%s = %v, want about %d", newest, got, before.Unix())
	}
}
