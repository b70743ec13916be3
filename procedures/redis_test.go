package procedures_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

func redisCluster() *proctest.World {
	w := cluster3()
	w.UseRedis("job-before-1", "job-before-2")
	return w
}

func stepDetail(r store.Run, name string, rollback bool) (store.Step, bool) {
	for _, s := range r.Steps {
		if s.Name == name && s.Rollback == rollback {
			return s, true
		}
	}
	return store.Step{}, false
}

func indexOf(actions []string, want string, from int) int {
	for i := from; i < len(actions); i++ {
		if actions[i] == want {
			return i
		}
	}
	return -1
}

// An upgrade empties the cache after every node stopped and before the
// first node starts on the new version; its roll-back puts the queue back
// as the backup saved it (the newer version's jobs gone) and empties the
// cache again before the first node starts on the old version.
func TestUpgradeRollbackRestoresQueueAndEmptiesCache(t *testing.T) {
	h := newHarness(t, redisCluster())
	h.restart(nil)
	h.startRun(upgrade())
	cp := h.waitCheckpoint("verify")
	h.world.Enqueue("job-of-1.7.14") // queued by the new version
	h.decide(cp, store.ActionRollback, "U2")
	end := h.waitFinished()
	if end.State != store.StateRolledBack {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	checkSafe(t, h.world)
	if q := h.world.Queue(); !slices.Equal(q, []string{"job-before-1", "job-before-2"}) {
		t.Fatalf("queue after the roll-back: %q", q)
	}
	a := h.world.Actions()
	backup := indexOf(a, "backup", 0)
	reset := indexOf(a, "redis-reset", backup)
	first := indexOf(a, "start app-1", reset)
	restore := indexOf(a, "restore b1", first)
	rbReset := indexOf(a, "redis-reset", restore)
	rbFirst := indexOf(a, "start app-1", rbReset)
	if backup < 0 || reset < 0 || first < 0 || restore < 0 || rbReset < 0 || rbFirst < 0 {
		t.Fatalf("actions out of order: %q", a)
	}
	for _, n := range []string{"app-2", "app-3"} {
		if i := indexOf(a, "start "+n, 0); i >= 0 && i < reset {
			t.Fatalf("%s started before the reset: %q", n, a)
		}
	}
	if s, _ := stepDetail(end, "backup", false); !strings.Contains(s.Detail, "Redis queue: 2 jobs saved") {
		t.Fatalf("backup detail %q", s.Detail)
	}
	if s, _ := stepDetail(end, "rb-restore", true); !strings.Contains(s.Detail, "put back: Redis queue: 2 jobs saved") {
		t.Fatalf("restore detail %q", s.Detail)
	}
	s, ok := stepDetail(end, "rb-redis-reset", true)
	if !ok || s.Status != store.StepDone || !strings.Contains(s.Detail, "Redis: cache emptied") {
		t.Fatalf("rb-redis-reset step: %+v", s)
	}
}

// Without Redis nothing changes but a line saying so.
func TestUpgradeWithoutRedis(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(upgrade())
	end, _ := h.drive()
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s", end.State)
	}
	if s, _ := stepDetail(end, "redis-reset", false); s.Detail != "Redis: none" {
		t.Fatalf("redis-reset detail %q", s.Detail)
	}
	if slices.Contains(h.world.Actions(), "redis-reset") {
		t.Fatal("reset a Redis that is not there")
	}
}

// A reset that fails stops the run before any node starts; Retry finishes
// it and the run goes on. A crash inside the reset resumes it (it is safe
// to repeat).
func TestRedisResetFailsThenRetry(t *testing.T) {
	h := newHarness(t, redisCluster())
	h.world.Fail("redis-reset", 1)
	h.startRun(upgrade())
	cp := h.waitCheckpoint("failure")
	if s, _ := stepDetail(cp, "redis-reset", false); s.Status != store.StepFailed {
		t.Fatalf("failed step: %+v", cp.Steps)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "start ") {
			t.Fatalf("a node started after a failed reset: %q", h.world.Actions())
		}
	}
	h.decide(cp, store.ActionRetry, "U2")
	end, _ := h.drive()
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	checkSafe(t, h.world)
}

func TestRedisResetCrashResumes(t *testing.T) {
	h := newHarness(t, redisCluster())
	blk := h.world.BlockOn("redis-reset")
	r := h.startRun(upgrade())
	select {
	case <-blk.Reached:
	case <-time.After(10 * time.Second):
		t.Fatal("reset never reached")
	}
	h.stop() // the process dies inside the reset
	blk.Release()
	h.start(nil)
	end, kinds := h.drive()
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s (asked %q)", end.State, end.Error, kinds)
	}
	if slices.Contains(kinds, "interrupted") {
		t.Fatalf("asked a person about a step that is safe to repeat: %q", kinds)
	}
	if n := strings.Count(strings.Join(h.world.Actions(), "\n"), "redis-reset"); n != 2 {
		t.Fatalf("reset ran %d times: %q", n, h.world.Actions())
	}
	checkSafe(t, h.world)
	_ = r
}

// A maintain's restore action empties the cache before the node starts on
// the restored database, and puts the backup's queue back.
func TestMaintainRestoreResetsRedis(t *testing.T) {
	w := redisCluster()
	w.AddBackup("old-1", "1.7.13")
	h := newHarness(t, w)
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "restore", Arg: "old-1"}}})
	cp := h.waitCheckpoint("verify")
	checkSafe(t, h.world)
	a := h.world.Actions()
	restore := indexOf(a, "restore old-1", 0)
	reset := indexOf(a, "redis-reset", restore)
	start := indexOf(a, "start app-1", reset)
	if restore < 0 || reset < 0 || start < 0 {
		t.Fatalf("actions: %q", a)
	}
	if s, _ := stepDetail(cp, "action-1", false); !strings.Contains(s.Detail, "Redis: cache emptied") {
		t.Fatalf("restore step detail %q", s.Detail)
	}
}

// The plan says what is done to Redis.
func TestPlanSaysRedis(t *testing.T) {
	h := newHarness(t, redisCluster())
	p, err := h.eng.Plan(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Redis: cache+queue+lock redis://fake/0", "Redis: empty the cache", "R5. Redis: empty the cache"} {
		if !strings.Contains(p, want) {
			t.Errorf("plan lacks %q:\n%s", want, p)
		}
	}
}

// A Redis that cannot be reached fails the preflight: no node stops.
func TestRedisCheckedAtPreflight(t *testing.T) {
	h := newHarness(t, redisCluster())
	h.world.Fail("redis-check", 1)
	h.startRun(upgrade())
	cp := h.waitCheckpoint("failure")
	if cp.Steps[0].Status != store.StepFailed || !strings.Contains(cp.Checkpoint.Question, "redis") {
		t.Fatalf("preflight %+v, question %q", cp.Steps[0], cp.Checkpoint.Question)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "stop ") || a == "backup" {
			t.Fatalf("downtime began past a failed Redis check: %q", h.world.Actions())
		}
	}
}

// A first start empties a cache left from an earlier install before its
// first node starts; where a node already runs, Redis is left alone.
func TestFirstStartResetsRedis(t *testing.T) {
	w := proctest.NewWorld(oldImage, false, "app-1", "app-2")
	w.UseRedis()
	h := newHarness(t, w)
	h.startRun(procedures.Request{Procedure: procedures.ProcStart})
	end, _ := h.drive()
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	a := h.world.Actions()
	if r, s := indexOf(a, "redis-reset", 0), indexOf(a, "start app-1", 0); r < 0 || s < r {
		t.Fatalf("actions %q", a)
	}

	w = proctest.NewWorld(oldImage, false, "app-1", "app-2")
	w.UseRedis()
	h = newHarness(t, w)
	if err := w.Cluster("prod").Nodes.Start(context.Background(), "app-2"); err != nil {
		t.Fatal(err)
	}
	h.startRun(procedures.Request{Procedure: procedures.ProcStart})
	end, _ = h.drive()
	if s, _ := stepDetail(end, "redis-reset", false); !strings.Contains(s.Detail, "Redis left alone: app-2 runs") {
		t.Fatalf("redis-reset detail %q", s.Detail)
	}
	if slices.Contains(h.world.Actions(), "redis-reset") {
		t.Fatal("Redis reset while a node ran")
	}
}

// A maintain's roll-back restores the safety backup's queue and empties
// the cache before the node starts on the restored database.
func TestMaintainRollbackResetsRedis(t *testing.T) {
	h := newHarness(t, redisCluster())
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "enable", Arg: "map"}}})
	cp := h.waitCheckpoint("verify")
	h.world.Enqueue("job-after-the-backup")
	h.decide(cp, store.ActionRollback, "U2")
	end := h.waitFinished()
	if end.State != store.StateRolledBack {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	checkSafe(t, h.world)
	if q := h.world.Queue(); !slices.Equal(q, []string{"job-before-1", "job-before-2"}) {
		t.Fatalf("queue %q", q)
	}
	a := h.world.Actions()
	restore := indexOf(a, "restore b1", 0)
	reset := indexOf(a, "redis-reset", restore)
	start := indexOf(a, "start app-1", reset)
	if restore < 0 || reset < 0 || start < 0 {
		t.Fatalf("actions %q", a)
	}
}
