package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

const (
	oldImage = "nocobase/nocobase:1.7.13"
	newImage = "nocobase/nocobase:1.7.14"
)

// replica is one nocobot process: its own store (pool and LISTEN
// connection) and engine, sharing the database and the cluster.
type replica struct {
	t      *testing.T
	name   string
	store  *Store
	eng    *procedures.Engine
	sub    *events.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

type replicaOpts struct {
	leaseTTL, poll time.Duration
	storeOpts      []Option
}

func startReplica(t *testing.T, dbURL, name string, w *proctest.World, o replicaOpts) *replica {
	t.Helper()
	s := openAt(t, dbURL, "", o.storeOpts...)
	eng, err := procedures.New(procedures.Options{Store: s, Clusters: []*procedures.Cluster{w.As(name, "prod")},
		Log: zerolog.Nop(), Owner: name, LeaseTTL: o.leaseTTL, PollEvery: o.poll})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rp := &replica{t: t, name: name, store: s, eng: eng, sub: eng.Subscribe(), cancel: cancel, done: make(chan struct{})}
	go func() { _ = eng.Run(ctx); close(rp.done) }()
	// Run has set up its context once its LISTEN is in place, so runs
	// started from now on belong to it.
	select {
	case <-s.listening:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no LISTEN connection", name)
	}
	t.Cleanup(rp.kill)
	return rp
}

// kill ends the replica as a crash would: its runs stop where they are,
// nothing is released, its connections close.
func (rp *replica) kill() {
	if rp.cancel == nil {
		return
	}
	rp.cancel()
	<-rp.done
	rp.sub.Close()
	_ = rp.store.Close()
	rp.cancel = nil
}

// waitFor reads rp's events until one matches.
func (rp *replica) waitFor(desc string, within time.Duration, match func(events.Event) bool) events.Event {
	rp.t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev := <-rp.sub.C:
			if match(ev) {
				return ev
			}
		case <-timeout:
			rp.t.Fatalf("%s: no %s within %s", rp.name, desc, within)
		}
	}
}

func isCheckpoint(kind string) func(events.Event) bool {
	return func(ev events.Event) bool {
		return ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == kind
	}
}

func isKind(k events.Kind) func(events.Event) bool {
	return func(ev events.Event) bool { return ev.Kind == k }
}

func upgrade() procedures.Request {
	return procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "U1", Via: "test"}
}

func checkUpgraded(t *testing.T, w *proctest.World) {
	t.Helper()
	if v := w.Violations(); len(v) > 0 {
		t.Fatalf("safety rules broken: %q", v)
	}
	for _, n := range []string{"app-1", "app-2", "app-3"} {
		if got := w.NodeState(n); got != "running "+newImage {
			t.Fatalf("%s is %s after the upgrade", n, got)
		}
	}
	if w.DBVersion() != "1.7.14" || w.LB() != ports.LBNormal {
		t.Fatalf("after the upgrade: database at %s, load balancer %s", w.DBVersion(), w.LB())
	}
}

func count(actions []string, a string) int {
	n := 0
	for _, x := range actions {
		if x == a {
			n++
		}
	}
	return n
}

// A replica dies in the middle of the backup; the other one waits for its
// lease to lapse, takes the run over, repeats the backup (safe to repeat)
// and finishes the upgrade.
func TestReplicaTakesOverFromDeadReplica(t *testing.T) {
	db := testenv.NewDatabase(t)
	w := proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3")
	opts := replicaOpts{leaseTTL: time.Second, poll: 100 * time.Millisecond}
	a := startReplica(t, db, "engine-a", w, opts)
	b := startReplica(t, db, "engine-b", w, opts)

	block := w.BlockOn("backup")
	r, err := a.eng.Start(context.Background(), upgrade())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-block.Reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the run never reached the backup")
	}
	// While a lives, b leaves the run alone, however often it looks.
	time.Sleep(1500 * time.Millisecond)
	if got, _ := b.store.GetRun(context.Background(), r.ID); got.Owner != "engine-a" {
		t.Fatalf("while engine-a lives the run is owned by %q", got.Owner)
	}
	killed := time.Now()
	a.kill()
	mid, err := b.store.GetRun(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := mid.Steps[mid.Current]; st.Name != "backup" || st.Status != store.StepRunning {
		t.Fatalf("after the kill the run is at %s (%s), want backup still running", st.Name, st.Status)
	}

	resumed := b.waitFor("resume", 10*time.Second, isKind(events.RunResumed))
	if resumed.Run.ID != r.ID || resumed.Run.Owner != "engine-b" {
		t.Fatalf("resumed %s owned by %q", resumed.Run.ID, resumed.Run.Owner)
	}
	if took := time.Since(killed); took > 5*time.Second {
		t.Fatalf("takeover took %s with a 1 s lease", took)
	}
	cp := b.waitFor("verify checkpoint", 10*time.Second, isCheckpoint("verify")).Run
	if _, err := b.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: cp.Checkpoint.ID,
		Action: store.ActionContinue, By: "U2", Via: "test"}); err != nil {
		t.Fatal(err)
	}
	end := b.waitFor("end of run", 10*time.Second, isKind(events.RunFinished)).Run
	if end.State != store.StateSucceeded {
		t.Fatalf("run ended %s: %s", end.State, end.Error)
	}
	checkUpgraded(t, w)
	acts := w.Actions()
	if n := count(acts, "backup"); n != 2 {
		t.Fatalf("backup ran %d times, want 2 (interrupted, then repeated): %q", n, acts)
	}
	if n := count(acts, "set-image app-1 "+newImage); n != 1 {
		t.Fatalf("set-image on app-1 ran %d times: %q", n, acts)
	}
	stored, _ := b.store.GetRun(context.Background(), r.ID)
	for _, s := range stored.Steps {
		if s.Status != store.StepDone {
			t.Errorf("step %s recorded as %s", s.Name, s.Status)
		}
	}
	if i := slices.IndexFunc(stored.Steps, func(s store.Step) bool { return s.Name == "backup" }); stored.Steps[i].Attempt != 2 {
		t.Errorf("backup step attempt %d, want 2", stored.Steps[i].Attempt)
	}
	if _, err := b.store.ActiveRun(context.Background(), "prod"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cluster lock after the run: %v", err)
	}
}

// Fifty people press "upgrade" at once, on two replicas: one run starts,
// everyone else hears which run holds the cluster.
func TestConcurrentStartsAcrossReplicas(t *testing.T) {
	db := testenv.NewDatabase(t)
	w := proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3")
	opts := replicaOpts{leaseTTL: 5 * time.Second, poll: time.Second}
	engines := []*replica{startReplica(t, db, "engine-a", w, opts), startReplica(t, db, "engine-b", w, opts)}

	const n = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		started []string
		busyIDs = map[string]int{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := upgrade()
			req.Requester = fmt.Sprintf("U%d", i)
			r, err := engines[i%2].eng.Start(context.Background(), req)
			mu.Lock()
			defer mu.Unlock()
			var busy *procedures.BusyError
			switch {
			case err == nil:
				started = append(started, r.ID)
			case errors.As(err, &busy):
				busyIDs[busy.Run.ID]++
			default:
				t.Errorf("start %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if len(started) != 1 {
		t.Fatalf("%d concurrent starts on two replicas started %d runs, want 1", n, len(started))
	}
	if busyIDs[started[0]] != n-1 {
		t.Fatalf("busy answers named %v, want all %d to name %s", busyIDs, n-1, started[0])
	}
	runs, err := engines[0].store.ListRuns(context.Background(), "prod", 0)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs recorded: %d, %v", len(runs), err)
	}
}

// A decision pressed on replica B reaches the run that replica A drives
// through NOTIFY: both engines poll only every 30 s here, so anything
// quicker is the notification.
func TestDecisionCrossesReplicas(t *testing.T) {
	db := testenv.NewDatabase(t)
	w := proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3")
	opts := replicaOpts{leaseTTL: 90 * time.Second, poll: 30 * time.Second}
	a := startReplica(t, db, "engine-a", w, opts)
	b := startReplica(t, db, "engine-b", w, opts)

	r, err := a.eng.Start(context.Background(), upgrade())
	if err != nil {
		t.Fatal(err)
	}
	cp := a.waitFor("verify checkpoint", 10*time.Second, isCheckpoint("verify")).Run
	pressed := time.Now()
	if _, err := b.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: cp.Checkpoint.ID,
		Action: store.ActionContinue, By: "U2", ByName: "Bea", Via: "slack"}); err != nil {
		t.Fatal(err)
	}
	dec := a.waitFor("decision", 2*time.Second, isKind(events.Decided))
	took := time.Since(pressed)
	if dec.Decision == nil || dec.Decision.By != "U2" || dec.Decision.Action != store.ActionContinue {
		t.Fatalf("engine-a applied %+v", dec.Decision)
	}
	t.Logf("decision on engine-b reached engine-a's run in %s", took)
	end := a.waitFor("end of run", 10*time.Second, isKind(events.RunFinished)).Run
	if end.State != store.StateSucceeded || end.Owner != "engine-a" {
		t.Fatalf("run ended %s, owned by %s", end.State, end.Owner)
	}
	checkUpgraded(t, w)
	// engine-b never drove a step of it.
	for {
		select {
		case ev := <-b.sub.C:
			if ev.Kind == events.StepStarted {
				t.Fatalf("engine-b started step %d of a run engine-a owns", ev.Step)
			}
			continue
		default:
		}
		break
	}
}
