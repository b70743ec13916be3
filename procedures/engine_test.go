package procedures_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

const (
	oldImage = "nocobase/nocobase:1.7.13"
	newImage = "nocobase/nocobase:1.7.14"
)

type harness struct {
	t      *testing.T
	world  *proctest.World
	clock  *proctest.Clock
	path   string
	store  store.Store
	eng    *procedures.Engine
	sub    *events.Subscription
	cancel context.CancelFunc
	done   chan struct{}
	events []events.Event
	mu     sync.Mutex
	policy procedures.TimeoutPolicy
	// parallel is the cluster's StartParallelism: 1 keeps the outside
	// actions in one order for tests that compare them.
	parallel int
	tune     func(*procedures.Cluster)
	own      bool // the engine drives only the runs it starts
}

func newHarness(t *testing.T, w *proctest.World) *harness {
	return newHarnessWith(t, w, nil)
}

// newHarnessWith lets tune change the cluster's settings before the
// engine starts.
func newHarnessWith(t *testing.T, w *proctest.World, tune func(*procedures.Cluster)) *harness {
	h := &harness{t: t, world: w, parallel: 1, tune: tune, clock: proctest.NewClock(time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC)),
		path: filepath.Join(t.TempDir(), "nocobot.db")}
	h.start(nil)
	t.Cleanup(h.stop)
	return h
}

// start opens the store file and runs an engine on it; wrap may replace
// the store (to inject a crash).
func (h *harness) start(wrap func(store.Store) store.Store) {
	s, err := sqlite.Open(context.Background(), h.path, zerolog.Nop())
	if err != nil {
		h.t.Fatal(err)
	}
	h.store = s
	var st store.Store = s
	if wrap != nil {
		st = wrap(s)
	}
	c := h.world.Cluster("prod")
	c.OnTimeout = h.policy
	c.StartParallelism = h.parallel
	if h.tune != nil {
		h.tune(c)
	}
	c.CheckpointTimeout = time.Hour
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{c}, Log: zerolog.Nop(),
		Clock: h.clock, PollEvery: 20 * time.Millisecond, LeaseTTL: time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
	h.sub = eng.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan struct{})
	run := eng.Run
	if h.own {
		run = eng.RunOwn
	}
	go func() { _ = run(ctx); close(h.done) }()
	// Let Run set up its context before Start launches runs under it.
	time.Sleep(5 * time.Millisecond)
}

// stop ends the engine as a crash would: no cleanup, the file closed.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.sub.Close()
	h.store.Close()
	h.cancel = nil
}

func (h *harness) restart(wrap func(store.Store) store.Store) {
	h.stop()
	h.start(wrap)
}

// waitFor reads events until one matches.
func (h *harness) waitFor(desc string, match func(events.Event) bool) events.Event {
	h.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-h.sub.C:
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
			if match(ev) {
				return ev
			}
		case <-timeout:
			r, _ := h.store.ListRuns(context.Background(), "", 1)
			h.t.Fatalf("no %s within 10 s; latest run: %+v\nactions: %q", desc, r, h.world.Actions())
		}
	}
}

func (h *harness) waitCheckpoint(kind string) store.Run {
	h.t.Helper()
	return h.waitFor("checkpoint "+kind, func(ev events.Event) bool {
		return ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == kind
	}).Run
}

func (h *harness) waitFinished() store.Run {
	h.t.Helper()
	return h.waitFor("end of run", func(ev events.Event) bool { return ev.Kind == events.RunFinished }).Run
}

func (h *harness) decide(r store.Run, a store.Action, by string) {
	h.t.Helper()
	if _, err := h.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: r.Checkpoint.ID, Action: a, By: by, Via: "test"}); err != nil {
		h.t.Fatalf("decide %s: %v", a, err)
	}
}

func (h *harness) startRun(req procedures.Request) store.Run {
	h.t.Helper()
	if req.Cluster == "" {
		req.Cluster = "prod"
	}
	if req.Requester == "" {
		req.Requester = "U1"
	}
	r, err := h.eng.Start(context.Background(), req)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func upgrade() procedures.Request {
	return procedures.Request{Procedure: procedures.ProcUpgrade, Version: "1.7.14"}
}

func cluster3() *proctest.World { return proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3") }

func checkSafe(t *testing.T, w *proctest.World) {
	t.Helper()
	if v := w.Violations(); len(v) > 0 {
		t.Fatalf("safety rules broken: %q", v)
	}
}

// Before the checkpoint, after it: the exact outside actions, in phases.
// A phase's nodes act together when StartParallelism allows (each node's
// own actions keep their order); one at a time, they go in name order.
var (
	upgradeToCheckpointP = []phase{
		inTurn("version app-1", "pull "+newImage, "backup-check",
			"lb maintenance",
			"stop app-1", "stop app-2", "stop app-3",
			"backup", "backup-verified b1"),
		perNode(all3, func(n string) []string { return []string{"set-image " + n + " " + newImage} }),
		inTurn("start app-1", "healthy app-1", "version app-1"),
	}
	upgradeAfterContinueP = []phase{
		perNode(rest2, startActions),
		inTurn("lb normal"),
		inTurn("export b1"), // the dump is finished once traffic is back
	}
	upgradeAfterRollbackP = []phase{
		inTurn("lb maintenance",
			"stop app-1", "stop app-2", "stop app-3",
			"restore b1"),
		perNode(all3, func(n string) []string { return []string{"set-image " + n + " " + oldImage} }),
		inTurn(startActions("app-1")...),
		perNode(rest2, startActions),
		inTurn("lb normal"),
	}
	upgradeAfterContinue = inOrder(upgradeAfterContinueP)
)

var (
	all3  = []string{"app-1", "app-2", "app-3"}
	rest2 = []string{"app-2", "app-3"}
)

func startActions(n string) []string { return []string{"start " + n, "healthy " + n, "version " + n} }

// phase is outside actions that happen together: sequences that may
// interleave, each in its own order.
type phase [][]string

// inTurn is a phase of actions one after another.
func inTurn(actions ...string) phase { return phase{actions} }

// perNode is a phase of the nodes' sequences, which may run together.
func perNode(nodes []string, seq func(node string) []string) phase {
	p := make(phase, len(nodes))
	for i, n := range nodes {
		p[i] = seq(n)
	}
	return p
}

// inOrder is what the phases do one at a time: each phase's sequences
// one after another.
func inOrder(phases ...[]phase) []string {
	var out []string
	for _, ps := range phases {
		for _, p := range ps {
			for _, seq := range p {
				out = append(out, seq...)
			}
		}
	}
	return out
}

func equalActions(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("outside actions differ\n got: %q\nwant: %q", got, want)
	}
}

// equalPhases checks got phase by phase: exactly each phase's actions,
// each sequence in its order, whatever the interleaving within a phase.
func equalPhases(t *testing.T, got []string, phases ...[]phase) {
	t.Helper()
	pos := 0
	for _, ps := range phases {
		for _, p := range ps {
			n := len(inOrder([]phase{p}))
			if pos+n > len(got) {
				t.Fatalf("outside actions end early at %d\n got: %q\nwant next: %q", pos, got, p)
			}
			seg := got[pos : pos+n]
			matched := 0
			for _, seq := range p {
				sub := slices.DeleteFunc(slices.Clone(seg), func(a string) bool { return !slices.Contains(seq, a) })
				if !slices.Equal(sub, seq) {
					t.Fatalf("outside actions differ at %d\n got: %q\nwant (interleaved): %q", pos, seg, p)
				}
				matched += len(sub)
			}
			if matched != n {
				t.Fatalf("outside actions differ at %d\n got: %q\nwant (interleaved): %q", pos, seg, p)
			}
			pos += n
		}
	}
	if pos != len(got) {
		t.Fatalf("unexpected outside actions after the expected ones: %q", got[pos:])
	}
}

// checkActions compares exactly with one node at a time (par 1), and
// phase by phase when nodes act together.
func checkActions(t *testing.T, par int, got []string, phases ...[]phase) {
	t.Helper()
	if par == 1 {
		equalActions(t, got, inOrder(phases...))
		return
	}
	equalPhases(t, got, phases...)
}

// The upgrade with the nodes one at a time (StartParallelism 1) and all
// together (0): the same actions, each node's in its order.
func TestUpgradeHappyPath(t *testing.T) {
	for _, par := range []int{1, 0} {
		t.Run(fmt.Sprintf("parallelism %d", par), func(t *testing.T) { upgradeHappyPath(t, par) })
	}
}

func upgradeHappyPath(t *testing.T, par int) {
	h := newHarness(t, cluster3())
	h.parallel = par
	h.restart(nil)
	r := h.startRun(upgrade())
	cp := h.waitCheckpoint("verify")
	checkActions(t, par, h.world.Actions(), upgradeToCheckpointP)
	if cp.State != store.StateWaiting || cp.Checkpoint.URL != "http://app-1:13000" || !strings.Contains(cp.Checkpoint.Question, "restores backup b1") {
		t.Fatalf("checkpoint = %+v", cp.Checkpoint)
	}
	if !slices.Equal(cp.Checkpoint.Options, []store.Action{store.ActionContinue, store.ActionRollback, store.ActionAbort}) {
		t.Fatalf("options = %v", cp.Checkpoint.Options)
	}
	h.decide(cp, store.ActionContinue, "U2")
	end := h.waitFinished()
	checkActions(t, par, h.world.Actions(), upgradeToCheckpointP, upgradeAfterContinueP)
	checkSafe(t, h.world)
	if end.State != store.StateSucceeded || end.ID != r.ID {
		t.Fatalf("end state %s", end.State)
	}
	if h.world.DBVersion() != "1.7.14" || h.world.LB() != ports.LBNormal || h.world.NodeState("app-3") != "running "+newImage {
		t.Fatalf("cluster after upgrade: db %s lb %s app-3 %s", h.world.DBVersion(), h.world.LB(), h.world.NodeState("app-3"))
	}
	sum := procedures.Summary(end)
	for _, want := range []string{"Upgrade of prod from 1.7.13 to 1.7.14 succeeded", "Downtime", "Backup b1"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary %q lacks %q", sum, want)
		}
	}
	stored, _ := h.store.GetRun(context.Background(), r.ID)
	for _, s := range stored.Steps {
		if s.Status != store.StepDone || s.Started.IsZero() || s.Ended.IsZero() || s.Attempt != 1 {
			t.Errorf("step %s recorded as %s (attempt %d)", s.Name, s.Status, s.Attempt)
		}
	}
	if _, err := h.store.ActiveRun(context.Background(), "prod"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the cluster lock is still held after the run")
	}
}

func TestUpgradeRollbackAtCheckpoint(t *testing.T) {
	for _, par := range []int{1, 0} {
		t.Run(fmt.Sprintf("parallelism %d", par), func(t *testing.T) { upgradeRollbackAtCheckpoint(t, par) })
	}
}

func upgradeRollbackAtCheckpoint(t *testing.T, par int) {
	h := newHarness(t, cluster3())
	h.parallel = par
	h.restart(nil)
	h.startRun(upgrade())
	h.decide(h.waitCheckpoint("verify"), store.ActionRollback, "U2")
	end := h.waitFinished()
	checkActions(t, par, h.world.Actions(), upgradeToCheckpointP, upgradeAfterRollbackP)
	checkSafe(t, h.world)
	if end.State != store.StateRolledBack || h.world.DBVersion() != "1.7.13" || h.world.NodeState("app-2") != "running "+oldImage {
		t.Fatalf("after roll back: state %s db %s app-2 %s", end.State, h.world.DBVersion(), h.world.NodeState("app-2"))
	}
}

func TestBusyClusterRefused(t *testing.T) {
	h := newHarness(t, cluster3())
	r := h.startRun(upgrade())
	h.waitCheckpoint("verify")
	_, err := h.eng.Start(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcMaintain, Requester: "U9"})
	var busy *procedures.BusyError
	if !errors.As(err, &busy) || !strings.Contains(err.Error(), r.ID) || !strings.Contains(err.Error(), "upgrade") || !strings.Contains(err.Error(), "U1") {
		t.Fatalf("second start = %v; want the running run's id, procedure and requester", err)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	h := newHarness(t, cluster3())
	for _, req := range []procedures.Request{
		{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "newest", Requester: "U1"},
		{Cluster: "prod", Procedure: procedures.ProcUpgrade, Image: "Registry/x:y z", Requester: "U1"},
		{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", DryRun: true, Requester: "U1"},
		{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14 ; rm", Requester: "U1"},
		{Cluster: "nope", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "U1"},
		{Cluster: "prod", Procedure: "deploy", Requester: "U1"},
		{Cluster: "prod", Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "enable", Arg: "../x"}}, Requester: "U1"},
	} {
		if _, err := h.eng.Start(context.Background(), req); err == nil {
			t.Errorf("%+v was accepted", req)
		}
	}
	if len(h.world.Actions()) != 0 {
		t.Fatalf("bad requests caused actions: %q", h.world.Actions())
	}
	if runs, _ := h.store.ListRuns(context.Background(), "", 0); len(runs) != 0 {
		t.Fatalf("bad requests recorded %d runs", len(runs))
	}
}

func TestSameVersionFailsBeforeDowntime(t *testing.T) {
	h := newHarness(t, proctest.NewWorld(newImage, true, "app-1"))
	h.startRun(upgrade())
	cp := h.waitCheckpoint("failure")
	if !strings.Contains(cp.Checkpoint.Question, "already runs nocobase/nocobase:1.7.14") || !strings.Contains(cp.Checkpoint.Question, "nothing to upgrade") ||
		!slices.Equal(cp.Checkpoint.Options, []store.Action{store.ActionAbort}) {
		t.Fatalf("checkpoint %+v", cp.Checkpoint)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "lb") || strings.HasPrefix(a, "stop") {
			t.Fatalf("downtime began: %q", h.world.Actions())
		}
	}
}

// TestFailureAtEachStep fails each outside action of the upgrade once and
// answers the failure with each decision.
func TestFailureAtEachStep(t *testing.T) {
	failAt := []struct {
		action   string
		rollback bool // roll back offered
	}{
		{"pull", false}, {"lb maintenance", true}, {"stop app-2", true}, {"backup", true},
		{"set-image app-2", true}, {"healthy app-1", true}, {"start app-3", true}, {"lb normal", true},
	}
	for _, f := range failAt {
		for _, decision := range []store.Action{store.ActionRetry, store.ActionRollback, store.ActionAbort} {
			if decision == store.ActionRollback && !f.rollback {
				continue
			}
			t.Run(f.action+"/"+string(decision), func(t *testing.T) {
				h := newHarness(t, cluster3())
				h.world.Fail(f.action, 1)
				h.startRun(upgrade())
				var cp store.Run
				for {
					ev := h.waitFor("checkpoint", func(ev events.Event) bool { return ev.Kind == events.Checkpoint })
					if ev.Run.Checkpoint.Kind == "failure" {
						cp = ev.Run
						break
					}
					h.decide(ev.Run, store.ActionContinue, "U2")
				}
				q := cp.Checkpoint.Question
				if !strings.Contains(q, "injected failure") || !strings.Contains(q, "Nodes: app-1") || !strings.Contains(q, "Traffic:") {
					t.Fatalf("failure question lacks the reason or the cluster's state: %q", q)
				}
				if got := slices.Contains(cp.Checkpoint.Options, store.ActionRollback); got != f.rollback {
					t.Fatalf("roll back offered = %v, want %v", got, f.rollback)
				}
				h.decide(cp, decision, "U2")
				var end store.Run
				for {
					ev := h.waitFor("checkpoint or end", func(ev events.Event) bool {
						return ev.Kind == events.Checkpoint || ev.Kind == events.RunFinished
					})
					if ev.Kind == events.RunFinished {
						end = ev.Run
						break
					}
					h.decide(ev.Run, store.ActionContinue, "U2")
				}
				checkSafe(t, h.world)
				want := map[store.Action]store.RunState{store.ActionRetry: store.StateSucceeded, store.ActionRollback: store.StateRolledBack, store.ActionAbort: store.StateAborted}[decision]
				if end.State != want {
					t.Fatalf("end state %s, want %s", end.State, want)
				}
				switch decision {
				case store.ActionRetry:
					if h.world.DBVersion() != "1.7.14" || h.world.LB() != ports.LBNormal {
						t.Fatalf("after retry: db %s lb %s", h.world.DBVersion(), h.world.LB())
					}
				case store.ActionRollback:
					if h.world.DBVersion() != "1.7.13" || h.world.LB() != ports.LBNormal || h.world.NodeState("app-1") != "running "+oldImage {
						t.Fatalf("after roll back: db %s lb %s app-1 %s", h.world.DBVersion(), h.world.LB(), h.world.NodeState("app-1"))
					}
				case store.ActionAbort:
					// Before any change there is nothing to describe.
					state := "Nodes:"
					if procedures.ChangedNothing(end) {
						state = "Nothing was changed"
					}
					if !strings.Contains(procedures.Summary(end), state) || end.Error != "aborted by U2" {
						t.Fatalf("abort summary lacks the cluster's state: %q", procedures.Summary(end))
					}
				}
			})
		}
	}
}

func TestCancelInterruptsSafeStep(t *testing.T) {
	h := newHarness(t, cluster3())
	blk := h.world.BlockOn("healthy app-1")
	r := h.startRun(upgrade())
	<-blk.Reached
	if err := h.eng.Cancel(context.Background(), r.ID, "U3", "test"); err != nil {
		t.Fatal(err)
	}
	end := h.waitFinished()
	if end.State != store.StateAborted || end.Error != "aborted by U3" {
		t.Fatalf("state %s error %q", end.State, end.Error)
	}
	for _, a := range h.world.Actions() {
		if a == "start app-2" {
			t.Fatal("the run went on after the abort")
		}
	}
	if s := end.Steps[6]; s.Name != "start-first" || s.Status != store.StepFailed || s.Detail != "interrupted by abort" {
		t.Fatalf("interrupted step recorded as %+v", s)
	}
}

func TestCancelLetsUnsafeStepFinish(t *testing.T) {
	h := newHarness(t, cluster3())
	blk := h.world.BlockOn("set-image app-1")
	r := h.startRun(upgrade())
	<-blk.Reached
	if err := h.eng.Cancel(context.Background(), r.ID, "U3", "test"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the abort must not cut the image change short
	blk.Release()
	end := h.waitFinished()
	if end.State != store.StateAborted {
		t.Fatalf("state %s", end.State)
	}
	// The image change finished on every node; nothing started after it.
	if h.world.NodeState("app-3") != "stopped "+newImage || slices.Contains(h.world.Actions(), "start app-1") {
		t.Fatalf("actions %q", h.world.Actions())
	}
}

func TestCheckpointTimeoutPolicies(t *testing.T) {
	for _, tt := range []struct {
		policy procedures.TimeoutPolicy
		want   store.RunState
	}{
		{procedures.TimeoutRollback, store.StateRolledBack},
		{procedures.TimeoutAbort, store.StateAborted},
		{procedures.TimeoutRemind, store.StateWaiting},
	} {
		t.Run(string(tt.policy), func(t *testing.T) {
			h := &harness{t: t, world: cluster3(), clock: proctest.NewClock(time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC)),
				path: filepath.Join(t.TempDir(), "nocobot.db"), policy: tt.policy}
			h.start(nil)
			t.Cleanup(h.stop)
			h.startRun(upgrade())
			cp := h.waitCheckpoint("verify")
			if want := cp.Checkpoint.Opened.Add(time.Hour); !cp.Checkpoint.Deadline.Equal(want) {
				t.Fatalf("deadline %v, want %v", cp.Checkpoint.Deadline, want)
			}
			waitTimer(t, h.clock)
			h.clock.Advance(59 * time.Minute)
			time.Sleep(50 * time.Millisecond)
			if r, _ := h.store.GetRun(context.Background(), cp.ID); r.State != store.StateWaiting {
				t.Fatalf("acted before the deadline: %s", r.State)
			}
			h.clock.Advance(time.Minute)
			if tt.policy == procedures.TimeoutRemind {
				ev := h.waitFor("reminder", func(ev events.Event) bool { return ev.Kind == events.Reminder })
				if ev.Run.State != store.StateWaiting || ev.Run.Checkpoint.Reminded != 1 || !ev.Run.Checkpoint.Deadline.Equal(h.clock.Now().Add(time.Hour)) {
					t.Fatalf("after reminder: %+v", ev.Run.Checkpoint)
				}
				h.decide(ev.Run, store.ActionContinue, "U2")
				if end := h.waitFinished(); end.State != store.StateSucceeded {
					t.Fatalf("state %s", end.State)
				}
				return
			}
			end := h.waitFinished()
			if end.State != tt.want {
				t.Fatalf("state %s, want %s", end.State, tt.want)
			}
			ds, _ := h.store.Decisions(context.Background(), end.ID)
			if len(ds) != 1 || ds[0].By != "timeout" {
				t.Fatalf("decisions %+v; want one by timeout", ds)
			}
			checkSafe(t, h.world)
		})
	}
}

func waitTimer(t *testing.T, c *proctest.Clock) {
	t.Helper()
	for range 500 {
		if c.Waiters() > 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("the engine never set a timer for the deadline")
}

func TestDecisionsAreChecked(t *testing.T) {
	h := newHarness(t, cluster3())
	r := h.startRun(upgrade())
	cp := h.waitCheckpoint("verify")
	ctx := context.Background()
	if _, err := h.eng.Decide(ctx, store.Decision{RunID: r.ID, Checkpoint: cp.Checkpoint.ID, Action: store.ActionRetry, By: "U2"}); err == nil {
		t.Fatal("retry accepted at a verify checkpoint")
	}
	if _, err := h.eng.Decide(ctx, store.Decision{RunID: r.ID, Checkpoint: "verify-0-9", Action: store.ActionContinue, By: "U2"}); !errors.Is(err, store.ErrAlreadyDecided) {
		t.Fatalf("a stale checkpoint: %v", err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.eng.Decide(ctx, store.Decision{RunID: r.ID, Checkpoint: cp.Checkpoint.ID, Action: store.ActionContinue, By: fmt.Sprint("U", i)}); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of 10 quick clicks decided, want 1", wins.Load())
	}
	end := h.waitFinished()
	if _, err := h.eng.Decide(ctx, store.Decision{RunID: r.ID, Checkpoint: cp.Checkpoint.ID, Action: store.ActionContinue, By: "U2"}); err == nil || !strings.Contains(err.Error(), "already succeeded") {
		t.Fatalf("a click on a finished run: %v (state %s)", err, end.State)
	}
}

// refusalOf is the reason of a typed refusal, 0 for any other error.
func refusalOf(err error) procedures.DecisionRefusal {
	var de *procedures.DecisionError
	if errors.As(err, &de) {
		return de.Why
	}
	return 0
}

// rulesSeen records what a caller's rules were asked, refusing when told.
type rulesSeen struct {
	decide, choose []string
	refuse         error
}

func (r *rulesSeen) MayDecide(run store.Run) error {
	r.decide = append(r.decide, run.ID)
	return r.refuse
}

func (r *rulesSeen) MayChoose(run store.Run, cp store.Checkpoint, a store.Action) error {
	r.choose = append(r.choose, cp.ID+" "+string(a))
	return nil
}

// DecideAs reads the run once and says why it refuses, typed: the
// caller words its answer from that without reading the run again. The
// caller's rules are asked in order: who may decide once the run is
// found, what they choose once the checkpoint is open and offers it.
func TestDecisionRefusalsAreTyped(t *testing.T) {
	h := newHarness(t, cluster3())
	ctx := context.Background()
	if _, err := h.eng.DecideAs(ctx, store.Decision{RunID: "r1-none", Action: store.ActionAbort}, nil); refusalOf(err) != procedures.DecisionNoRun || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no such run: %v", err)
	}
	r := h.startRun(upgrade())
	cp := h.waitCheckpoint("verify").Checkpoint
	rules := &rulesSeen{refuse: errors.New("not you")}
	if _, err := h.eng.DecideAs(ctx, store.Decision{RunID: r.ID, Action: store.ActionContinue, By: "U9"}, rules); err != rules.refuse || len(rules.choose) != 0 {
		t.Fatalf("refused by the rules: %v, asked %v", err, rules.choose)
	}
	rules.refuse = nil
	_, err := h.eng.DecideAs(ctx, store.Decision{RunID: r.ID, Action: store.ActionRetry, By: "U2"}, rules)
	if refusalOf(err) != procedures.DecisionNotOption || !strings.Contains(err.Error(), "retry is not an option here") {
		t.Fatalf("retry at a verify checkpoint: %v", err)
	}
	var de *procedures.DecisionError
	if errors.As(err, &de); de.Run.Checkpoint == nil || de.Run.Checkpoint.ID != cp.ID {
		t.Fatalf("the refusal carries the run as read: %+v", de.Run.Checkpoint)
	}
	if _, err := h.eng.DecideAs(ctx, store.Decision{RunID: r.ID, Checkpoint: "verify-0-9", Action: store.ActionContinue, By: "U2"}, rules); refusalOf(err) != procedures.DecisionClosed || !errors.Is(err, store.ErrAlreadyDecided) {
		t.Fatalf("a stale checkpoint: %v", err)
	}
	// No checkpoint named: the one open now.
	got, err := h.eng.DecideAs(ctx, store.Decision{RunID: r.ID, Action: store.ActionContinue, By: "U2"}, rules)
	if err != nil || got.Checkpoint != cp.ID {
		t.Fatalf("the open checkpoint: %+v, %v", got, err)
	}
	if want := cp.ID + " continue"; len(rules.choose) != 1 || rules.choose[0] != want || len(rules.decide) != 4 {
		t.Fatalf("rules asked %v and %v, want 4 runs and %q", rules.decide, rules.choose, want)
	}
	h.waitFinished()
	if _, err := h.eng.DecideAs(ctx, store.Decision{RunID: r.ID, Action: store.ActionAbort, By: "U2"}, nil); refusalOf(err) != procedures.DecisionFinished {
		t.Fatalf("a finished run: %v", err)
	}
	if err := h.eng.CancelAs(ctx, r.ID, "U2", "test", nil); refusalOf(err) != procedures.DecisionFinished {
		t.Fatalf("cancel of a finished run: %v", err)
	}
}

func TestMaintainPluginActions(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{
		{Kind: "enable", Arg: "@nocobase/plugin-map"}, {Kind: "disable", Arg: "graph"}}})
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	end := h.waitFinished()
	equalActions(t, h.world.Actions(), []string{
		"version app-1", "key-check app-1", "backup-check",
		"stop app-2", "stop app-3", "start app-1", "healthy app-1", "version app-1",
		"backup", "backup-verified b1",
		"lb maintenance", "plugin enable @nocobase/plugin-map on app-1", "lb normal",
		"lb maintenance", "plugin disable graph on app-1", "lb normal",
		"start app-2", "healthy app-2", "version app-2", "start app-3", "healthy app-3", "version app-3",
		"export b1", // the backup is finished once every node serves again
	})
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s", end.State)
	}
	checkSafe(t, h.world)
}

func TestMaintainManualWindowThenRollback(t *testing.T) {
	h := newHarness(t, cluster3())
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain})
	manual := h.waitCheckpoint("manual")
	if !strings.Contains(manual.Checkpoint.Question, "Do your maintenance in NocoBase now") || manual.Checkpoint.URL == "" {
		t.Fatalf("manual checkpoint %+v", manual.Checkpoint)
	}
	h.decide(manual, store.ActionContinue, "U1")
	h.decide(h.waitCheckpoint("verify"), store.ActionRollback, "U2")
	end := h.waitFinished()
	if end.State != store.StateRolledBack {
		t.Fatalf("state %s", end.State)
	}
	acts := h.world.Actions()
	if i := slices.Index(acts, "restore b1"); i < 0 || !slices.Contains(acts[:i], "stop app-1") {
		t.Fatalf("roll back must stop the node, then restore the safety backup: %q", acts)
	}
	checkSafe(t, h.world)
}

func TestMaintainRestoreAction(t *testing.T) {
	h := newHarness(t, cluster3())
	h.world.AddBackup("prod-old", "1.7.13")
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "restore", Arg: "prod-old"}}})
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	if end := h.waitFinished(); end.State != store.StateSucceeded {
		t.Fatalf("state %s", end.State)
	}
	acts := h.world.Actions()
	if acts[0] != "verify prod-old" && acts[1] != "verify prod-old" {
		t.Fatalf("the backup to restore must be verified at preflight: %q", acts)
	}
	checkSafe(t, h.world)
}

func TestFirstStart(t *testing.T) {
	h := newHarness(t, proctest.NewWorld(newImage, false, "app-1", "app-2"))
	h.startRun(procedures.Request{Procedure: procedures.ProcStart})
	end := h.waitFinished()
	equalActions(t, h.world.Actions(), []string{"lb maintenance", "start app-1", "healthy app-1", "version app-1", "start app-2", "healthy app-2", "version app-2", "lb normal"})
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s", end.State)
	}
}

func TestNoNodesFailsClearly(t *testing.T) {
	h := newHarness(t, proctest.NewWorld(newImage, false))
	h.startRun(procedures.Request{Procedure: procedures.ProcStart})
	cp := h.waitCheckpoint("failure")
	if !strings.Contains(cp.Checkpoint.Question, "no app nodes found") {
		t.Fatalf("question %q", cp.Checkpoint.Question)
	}
}

func TestPlanChangesNothing(t *testing.T) {
	h := newHarness(t, cluster3())
	p, err := h.eng.Plan(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Plan for the upgrade of prod to 1.7.14", "app-1: running, " + oldImage, "New image: " + newImage,
		" 1. Preflight", " 8. Verify checkpoint — waits for a person", "Redis: none", "R1. load balancer to the maintenance page", "R3. restore the database"} {
		if !strings.Contains(p, want) {
			t.Errorf("plan lacks %q:\n%s", want, p)
		}
	}
	if len(h.world.Actions()) != 0 {
		t.Fatalf("plan acted: %q", h.world.Actions())
	}
	if runs, _ := h.store.ListRuns(context.Background(), "", 0); len(runs) != 0 {
		t.Fatal("plan recorded a run")
	}
}
