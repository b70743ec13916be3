package migrationtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// runDeciding starts req and, at the verify checkpoint, lets decide
// choose (it may wait for the nodes first); any other checkpoint fails
// the test.
func (c *cluster) runDeciding(req procedures.Request, decide func(ctx context.Context) store.Action) store.Run {
	c.t.Helper()
	req.Cluster, req.Requester = "mig", "tester"
	sub := c.eng.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run, err := c.eng.Start(ctx, req)
	if err != nil {
		c.t.Fatal(err)
	}
	for {
		select {
		case ev := <-sub.C:
			if ev.Run.ID != run.ID {
				continue
			}
			switch {
			case ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == "verify":
				a := decide(ctx)
				if _, err := c.eng.Decide(ctx, store.Decision{RunID: run.ID, Checkpoint: ev.Run.Checkpoint.ID, Action: a, By: "tester", Via: "test"}); err != nil {
					c.t.Fatal(err)
				}
			case ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil:
				c.t.Fatalf("%s stopped at %s: %s\nlogs:\n%s", req.Procedure, ev.Run.Checkpoint.Kind, ev.Run.Checkpoint.Question, c.dbLogs())
			case ev.Kind == events.RunFinished:
				return ev.Run
			}
		case <-ctx.Done():
			c.t.Fatalf("%s did not finish\nlogs:\n%s", req.Procedure, c.dbLogs())
		}
	}
}

// healthy reports which nodes answer 200 ok on their health check.
func (c *cluster) healthy() []bool {
	out := make([]bool, len(c.urls))
	for i, u := range c.urls {
		code, body := get(u + "/api/__health_check")
		out[i] = code == 200 && strings.TrimSpace(body) == "ok"
	}
	return out
}

func (c *cluster) running(i int) bool {
	return testenv.Docker(c.t, c.host, "inspect", "--format", "{{.State.Running}}", c.names[i]) == "true"
}

// With start during verify, the other nodes come up on the real engine
// while the checkpoint waits (never two upgrading at once, each migration
// once); continue finishes at once. Roll back and abort while they start
// stop them.
func TestStartDuringVerifyOnDocker(t *testing.T) {
	host := testenv.DockerHost(t)
	v1 := testenv.NodeImage(t, host, "2.1.0")
	testenv.NodeImage(t, host, "2.2.0")
	early := true
	upgrade := procedures.Request{Procedure: procedures.ProcUpgrade, Version: "2.2.0", StartDuringVerify: &early}

	t.Run("continue", func(t *testing.T) {
		c := newCluster(t, 3, v1, nil, "")
		c.seed("2.1.0")
		end := c.runDeciding(upgrade, func(ctx context.Context) store.Action {
			// Every node serves the new version before anyone continues.
			for {
				h := c.healthy()
				if h[0] && h[1] && h[2] {
					return store.ActionContinue
				}
				select {
				case <-ctx.Done():
					t.Fatalf("the others never became healthy during the check: %v\n%s", h, c.dbLogs())
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
		if end.State != store.StateSucceeded {
			t.Fatalf("upgrade %s: %s", end.State, end.Error)
		}
		// The engine may learn of the last node's health a moment after
		// this test's own probe saw it: then the detail says how long
		// after continue ("all healthy 0.1 s after continue").
		if d := step(end, "start-rest").Detail; !strings.Contains(d, "during the check; all healthy ") ||
			!strings.Contains(d, "SKIP_SAME_VERSION_UPGRADE=true") {
			t.Errorf("start-rest detail: %q", d)
		}
		c.checkMigrations("2.2.0", []string{"upgrade-to-2.2.0/@nocobase/server"})
	})
	t.Run("rollback", func(t *testing.T) {
		c := newCluster(t, 3, v1, nil, "")
		c.seed("2.1.0")
		end := c.runDeciding(upgrade, func(context.Context) store.Action { return store.ActionRollback })
		if end.State != store.StateRolledBack {
			t.Fatalf("rolled-back upgrade %s: %s", end.State, end.Error)
		}
		c.checkMigrations("2.1.0", []string{"upgrade-to-2.2.0/@nocobase/server"})
	})
	t.Run("abort", func(t *testing.T) {
		c := newCluster(t, 3, v1, nil, "")
		c.seed("2.1.0")
		end := c.runDeciding(upgrade, func(context.Context) store.Action { return store.ActionAbort })
		if end.State != store.StateAborted {
			t.Fatalf("aborted upgrade %s: %s", end.State, end.Error)
		}
		if h := c.healthy(); !h[0] {
			t.Errorf("the first node stopped serving after the abort: %v", h)
		}
		for i := 1; i < 3; i++ {
			if c.running(i) {
				t.Errorf("%s still runs after the abort", c.names[i])
			}
		}
		if o := c.read("overlaps.log"); o != "" {
			t.Errorf("two nodes ran NocoBase's upgrade at once:\n%s", c.dbLogs())
		}
	})
}
