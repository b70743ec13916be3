package metrics_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	slackfront "github.com/nocobot/nocobot/bot/slack"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/metrics"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// exported lists the metric names /metrics can show: every family once
// each kind of thing it counts has happened, histograms with their
// _bucket, _sum and _count series.
func exported(t *testing.T) []string {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "n.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1")
	m := metrics.New("prod")
	m.WatchStore(st)
	m.Webhooks("oncall")
	apiErrors := slackfront.NewAPIErrorCounter()
	if err := m.Register(apiErrors.Collector()); err != nil {
		t.Fatal(err)
	}
	apiErrors.Count("chat.update", "ratelimited")
	bk := m.Backups("prod", w.Cluster("prod").Backups)
	if _, err := bk.Create(context.Background(), ports.BackupRequest{Cluster: "prod", Version: "1.7.13"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r := store.Run{ID: "r1", Cluster: "prod", Procedure: "upgrade", State: store.StateSucceeded,
		Steps:      []store.Step{{Name: "backup", Started: t0, Ended: t0.Add(time.Second)}},
		Checkpoint: &store.Checkpoint{Kind: "verify", Opened: t0},
		Facts: map[string]string{ // as the steps record the 503 period
			"downtime_start": t0.UTC().Format(time.RFC3339Nano), "downtime_end": t0.Add(time.Minute).UTC().Format(time.RFC3339Nano)}}
	for _, ev := range []events.Event{
		{Kind: events.RunStarted, Run: r},
		{Kind: events.StepDone, Run: r, Step: 0},
		{Kind: events.Decided, Run: r, Decision: &store.Decision{At: t0.Add(time.Minute)}},
		{Kind: events.WindowStarted, Window: &events.WindowEvent{Start: t0}, At: t0},
		{Kind: events.RunFinished, Run: r},
		{Kind: events.Missed},
	} {
		m.Observe(ev)
	}
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
		if len(f.GetMetric()) > 0 && f.GetMetric()[0].GetHistogram() != nil {
			names = append(names, f.GetName()+"_bucket", f.GetName()+"_sum", f.GetName()+"_count")
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bnocobot_[a-z_]+[a-z]`)

// Every nocobot metric the shipped alert rules, their unit tests and the
// Grafana dashboard name is one nocobot exports: a metric renamed without
// them fails here.
func TestDeployedRulesAndDashboardNameRealMetrics(t *testing.T) {
	have := exported(t)
	files, _ := filepath.Glob("../deploy/prometheus/*.yml")
	dash, _ := filepath.Glob("../deploy/grafana/*.json")
	if len(files) < 2 || len(dash) < 1 {
		t.Fatalf("rules %v, dashboards %v: missing", files, dash)
	}
	named := 0
	for _, f := range append(files, dash...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".json") {
			var d struct {
				Panels []struct {
					Title   string `json:"title"`
					Type    string `json:"type"`
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, p := range d.Panels {
				if p.Type != "row" && (len(p.Targets) == 0 || p.Targets[0].Expr == "") {
					t.Errorf("%s: panel %q has no query", f, p.Title)
				}
			}
		}
		for _, n := range metricName.FindAllString(string(b), -1) {
			named++
			if !slices.Contains(have, n) {
				t.Errorf("%s names %s, which nocobot does not export", filepath.Base(f), n)
			}
		}
	}
	if named < 20 {
		t.Errorf("only %d metric names found in the rules and the dashboard", named)
	}
}

// promtool checks the rules and runs their unit tests (the alerts fire
// when they should and not before). Debian's prometheus package, which
// ships promtool, is a server we do not install: scripts/test takes the
// binary out of the package and sets PROMTOOL; elsewhere this test runs
// where promtool is on PATH or PROMTOOL names it.
func TestPromtoolChecksTheRules(t *testing.T) {
	tool := os.Getenv("PROMTOOL")
	if tool == "" {
		var err error
		if tool, err = exec.LookPath("promtool"); err != nil {
			t.Skip("promtool is not installed (Debian: the prometheus package; or set PROMTOOL): the rules are not checked by promtool")
		}
	}
	for _, args := range [][]string{{"check", "rules", "nocobot.rules.yml"}, {"test", "rules", "nocobot.rules.test.yml"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, tool, args...)
		cmd.Dir = "../deploy/prometheus"
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
