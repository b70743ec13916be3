package procedures_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// ownEnv gives the cluster nodes with their own environments (plain
// containers) and the migrations setting mode.
func ownEnv(w *proctest.World, mode string) func(*procedures.Cluster) {
	return func(c *procedures.Cluster) {
		c.NodeEnv, c.Migrations, c.StartParallelism = w, mode, 0
	}
}

// runUpgrade upgrades to version, continuing at the checkpoint, and
// returns the finished run.
func runUpgrade(t *testing.T, h *harness, version string) store.Run {
	t.Helper()
	h.startRun(procedures.Request{Procedure: procedures.ProcUpgrade, Version: version})
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	end := h.waitFinished()
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	return end
}

func forwardDetail(r store.Run, name string) string {
	s, _ := stepDetail(r, name, false)
	return s.Detail
}

// The order of the nodes after the first follows the version the first
// reports and whether the nodes have environments of their own; the
// detail says which and why, and the fake cluster never sees two nodes
// upgrade at once.
func TestRestOrder(t *testing.T) {
	cases := []struct {
		name, from, to, mode string
		own                  bool
		together             bool
		why                  string
	}{
		{"2.x together", "2.2.14", "2.2.15", "", true, true, "with SKIP_SAME_VERSION_UPGRADE=true: app-1 runs NocoBase 2.2.15"},
		{"first with the switch", "2.0.0-alpha.20", "2.0.0-alpha.21", "", true, true, "runs NocoBase 2.0.0-alpha.21"},
		{"just before the switch", "2.0.0-alpha.3", "2.0.0-alpha.20", "", true, false, "one at a time: NocoBase 2.0.0-alpha.20 has no SKIP_SAME_VERSION_UPGRADE"},
		{"1.x one at a time", "1.7.13", "1.7.14", "", true, false, "one at a time: NocoBase 1.7.14 has no SKIP_SAME_VERSION_UPGRADE"},
		{"configured one at a time", "2.2.14", "2.2.15", procedures.MigrationsOneAtATime, true, false, "one at a time, as configured"},
		{"one environment (Swarm)", "2.2.14", "2.2.15", "", false, false, "the nodes share one environment"},
		{"forced switch", "1.7.13", "1.7.14", procedures.MigrationsSkipSameVersion, true, true, "as configured"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := proctest.NewWorld("nocobase/nocobase:"+tc.from, true, "app-1", "app-2", "app-3")
			h := newHarnessWith(t, w, func(c *procedures.Cluster) {
				if tc.own {
					c.NodeEnv = w
				}
				c.Migrations, c.StartParallelism = tc.mode, 0
			})
			h.startRun(procedures.Request{Procedure: procedures.ProcUpgrade, Version: tc.to})
			cp := h.waitCheckpoint("verify")
			blk := w.BlockOn("healthy app-2")
			h.decide(cp, store.ActionContinue, "U2")
			<-blk.Reached
			time.Sleep(200 * time.Millisecond)
			third := slices.Contains(w.Actions(), "start app-3")
			blk.Release()
			end := h.waitFinished()
			if end.State != store.StateSucceeded {
				t.Fatalf("state %s: %s", end.State, end.Error)
			}
			if third != tc.together {
				t.Errorf("app-3 started while app-2 was starting: %v, want %v", third, tc.together)
			}
			if d := forwardDetail(end, "start-rest"); !strings.Contains(d, tc.why) {
				t.Errorf("start-rest detail %q lacks %q", d, tc.why)
			}
			acts := w.Actions()
			for _, n := range []string{"app-2", "app-3"} {
				set := slices.Contains(acts, "set-env "+n+" SKIP_SAME_VERSION_UPGRADE=true")
				if set != tc.together {
					t.Errorf("%s given the switch: %v (actions %q)", n, set, acts)
				}
			}
			if slices.ContainsFunc(acts, func(a string) bool { return strings.HasPrefix(a, "set-env app-1") }) {
				t.Errorf("the first node's environment was changed: %q", acts)
			}
			checkSafe(t, w)
		})
	}
}

// A first start: the first node installs, one more starts alone without
// the switch (an install leaves migrations to run), then the others
// together with it.
func TestFirstStartSettlesOneNodeAlone(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:2.2.15", false, "app-1", "app-2", "app-3", "app-4")
	h := newHarnessWith(t, w, ownEnv(w, ""))
	h.startRun(procedures.Request{Procedure: procedures.ProcStart})
	end := h.waitFinished()
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	acts := w.Actions()
	healthy2 := slices.Index(acts, "healthy app-2")
	for _, n := range []string{"app-3", "app-4"} {
		if i := slices.Index(acts, "start "+n); i < healthy2 || !slices.Contains(acts[:i], "set-env "+n+" SKIP_SAME_VERSION_UPGRADE=true") {
			t.Errorf("%s: started before app-2 was healthy, or without the switch: %q", n, acts)
		}
	}
	if slices.ContainsFunc(acts, func(a string) bool {
		return strings.HasPrefix(a, "set-env app-2") || strings.HasPrefix(a, "set-env app-1")
	}) {
		t.Errorf("app-1 or app-2 given the switch: %q", acts)
	}
	if d := forwardDetail(end, "start-rest"); !strings.Contains(d, "one node runs alone first") {
		t.Errorf("start-rest detail %q", d)
	}
	checkSafe(t, w)
}

// The first node always runs the upgrade: a switch left on it is taken
// off before it starts.
func TestFirstNodeStartsWithoutTheSwitch(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:2.2.14", true, "app-1", "app-2")
	w.SetNodeEnv("app-1", "SKIP_SAME_VERSION_UPGRADE", "true")
	h := newHarnessWith(t, w, ownEnv(w, ""))
	runUpgrade(t, h, "2.2.15")
	acts := w.Actions()
	i := slices.Index(acts, "set-env app-1 SKIP_SAME_VERSION_UPGRADE=")
	if i < 0 || i > slices.Index(acts, "start app-1") {
		t.Fatalf("the switch was not taken off app-1 before its start: %q", acts)
	}
	checkSafe(t, w)
}

// Preflight compares the nodes' environments: a variable that differs is
// refused, naming it and the nodes, never the value; per-node variables
// (built in or configured) may differ; with the worker-id allocator more
// than 32 nodes is refused.
func TestPreflightComparesEnvironments(t *testing.T) {
	refused := func(t *testing.T, w *proctest.World, perNode []string) string {
		t.Helper()
		h := newHarnessWith(t, w, func(c *procedures.Cluster) { c.NodeEnv, c.PerNodeEnv = w, perNode })
		h.startRun(procedures.Request{Procedure: procedures.ProcMaintain})
		r := h.waitFor("preflight ends", func(ev events.Event) bool {
			return ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil
		}).Run
		if r.Checkpoint.Kind != "failure" {
			return ""
		}
		return r.Checkpoint.Question
	}
	three := func() *proctest.World {
		w := proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3")
		for i, n := range []string{"app-1", "app-2", "app-3"} {
			w.SetNodeEnv(n, "APP_KEY", "k-secret")
			w.SetNodeEnv(n, "DB_PASSWORD", "pw-secret")
			w.SetNodeEnv(n, "APP_PORT", fmt.Sprint(13000+i))
			w.SetNodeEnv(n, "NODE_NAME", n)
		}
		return w
	}
	t.Run("alike", func(t *testing.T) {
		if q := refused(t, three(), []string{"NODE_NAME"}); q != "" {
			t.Fatalf("refused: %s", q)
		}
	})
	t.Run("another key", func(t *testing.T) {
		w := three()
		w.SetNodeEnv("app-2", "APP_KEY", "other-secret")
		q := refused(t, w, []string{"NODE_NAME"})
		if !strings.Contains(q, "APP_KEY (one value on app-1, app-3; another on app-2)") {
			t.Errorf("refusal %q", q)
		}
		for _, leak := range []string{"secret", "APP_PORT", "NODE_NAME", "DB_PASSWORD"} {
			if strings.Contains(q, leak) {
				t.Errorf("refusal %q mentions %q", q, leak)
			}
		}
		if slices.ContainsFunc(w.Actions(), func(a string) bool { return strings.HasPrefix(a, "stop") || strings.HasPrefix(a, "lb") }) {
			t.Errorf("acted after the refusal: %q", w.Actions())
		}
	})
	t.Run("unset and not per node", func(t *testing.T) {
		w := three()
		q := refused(t, w, nil)
		if !strings.Contains(q, "NODE_NAME (one value on app-1; another on app-2; a third on app-3)") {
			t.Errorf("refusal %q", q)
		}
	})
	t.Run("worker ids", func(t *testing.T) {
		names := make([]string, 33)
		for i := range names {
			names[i] = fmt.Sprintf("app-%02d", i+1)
		}
		w := proctest.NewWorld(oldImage, true, names...)
		if q := refused(t, w, nil); q != "" {
			t.Fatalf("33 nodes without the allocator refused: %s", q)
		}
		w = proctest.NewWorld(oldImage, true, names...)
		for _, n := range names {
			w.SetNodeEnv(n, "REDIS_URL", "redis://r:6379/4")
		}
		if q := refused(t, w, nil); !strings.Contains(q, "33 nodes, but the worker-id allocator (REDIS_URL) gives ids to at most 32") {
			t.Errorf("refusal %q", q)
		}
	})
}

// The plan says how the other nodes will start, from the version the
// run moves to.
func TestPlanSaysTheStartOrder(t *testing.T) {
	for _, tc := range []struct{ version, want string }{
		{"2.2.15", "the others with SKIP_SAME_VERSION_UPGRADE=true (NocoBase 2.2.15 reads it"},
		{"1.7.14", "the others one at a time, each waited healthy (NocoBase 1.7.14 has no SKIP_SAME_VERSION_UPGRADE)"},
	} {
		w := proctest.NewWorld(oldImage, true, "app-1", "app-2")
		h := newHarnessWith(t, w, ownEnv(w, ""))
		p, err := h.eng.Plan(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: tc.version, Requester: "U1"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p, "Migrations: the first node starts alone; "+tc.want) {
			t.Errorf("plan lacks %q:\n%s", tc.want, p)
		}
	}
}

// Nodes left on different images (an upgrade aborted after set-image on
// some of them, a node edited by hand) start one at a time: with the
// switch, each whose version differs from the database's would still run
// NocoBase's upgrade, and together. The detail says why.
func TestMixedImagesStartOneAtATime(t *testing.T) {
	ctx := context.Background()
	w := proctest.NewWorld("nocobase/nocobase:2.2.15", true, "app-1", "app-2", "app-3", "app-4")
	const old = "nocobase/nocobase:2.2.14"
	if err := w.Pull(ctx, old, func(string) {}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"app-3", "app-4"} {
		if err := w.Stop(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := w.SetImage(ctx, n, old); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarnessWith(t, w, ownEnv(w, ""))
	req := procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "enable", Arg: "map"}}}
	plan, err := h.eng.Plan(ctx, procedures.Request{Cluster: "prod", Procedure: req.Procedure, Actions: req.Actions, Requester: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "the others one at a time, each waited healthy (the nodes run different images: app-1, app-2 on nocobase/nocobase:2.2.15; app-3, app-4 on nocobase/nocobase:2.2.14)"; !strings.Contains(plan, want) {
		t.Errorf("plan lacks %q:\n%s", want, plan)
	}
	h.startRun(req)
	cp := h.waitCheckpoint("verify")
	// The two old nodes' health waits until released: started together,
	// both run the upgrade at once.
	blk3, blk4 := w.BlockOn("healthy app-3"), w.BlockOn("healthy app-4")
	h.decide(cp, store.ActionContinue, "U2")
	<-blk3.Reached
	time.Sleep(200 * time.Millisecond)
	fourth := slices.Contains(w.Actions(), "start app-4")
	blk3.Release()
	<-blk4.Reached
	blk4.Release()
	end := h.waitFinished()
	if fourth {
		t.Errorf("app-4 started while app-3 was starting: %q", w.Actions())
	}
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	if d := forwardDetail(end, "start-rest"); !strings.Contains(d, "one at a time: the nodes run different images") || !strings.Contains(d, "app-3") {
		t.Errorf("start-rest detail %q", d)
	}
	checkSafe(t, w)
}
