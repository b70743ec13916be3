// Package storetest is the test suite every store.Store implementation
// runs, so the embedded and the PostgreSQL stores behave alike.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

// Open returns a new, empty store for one test; the suite closes it.
type Open func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"RunRoundTrip", testRunRoundTrip},
		{"ClusterLock", testClusterLock},
		{"ConcurrentCreateOneWins", testConcurrentCreate},
		{"ListAndUnfinished", testListAndUnfinished},
		{"Leases", testLeases},
		{"Decisions", testDecisions},
		{"WatchDecisions", testWatchDecisions},
		{"Audit", testAudit},
		{"AuditKeepsEveryField", testAuditFields},
		{"AuditByRun", testAuditByRun},
		{"SeenOnce", testSeenOnce},
		{"Windows", testWindows},
		{"UpdateWindow", testUpdateWindow},
		{"UpdateWindowConcurrent", testUpdateWindowConcurrent},
		{"Notes", testNotes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tt.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

// NewRun returns a realistic unfinished run.
func NewRun(id, cluster string, created time.Time) store.Run {
	return store.Run{
		ID: id, Cluster: cluster, Procedure: "upgrade",
		Params:    map[string]string{"version": "1.7.14"},
		Requester: "U123", Via: "slack", State: store.StateRunning,
		Steps: []store.Step{
			{Name: "preflight", Title: "Preflight", Status: store.StepDone, Started: created, Ended: created.Add(time.Second), Attempt: 1, Detail: "3 nodes"},
			{Name: "lb-maintenance", Title: "Load balancer to 503", Status: store.StepRunning, Started: created.Add(time.Second), Attempt: 1, Progress: "switching"},
			{Name: "stop-nodes", Title: "Stop nodes", Status: store.StepPending},
		},
		Current: 1,
		Checkpoint: &store.Checkpoint{ID: "verify-1", Kind: "verify", Step: 6, Question: "ok?",
			Options: []store.Action{store.ActionContinue, store.ActionRollback}, Opened: created, Deadline: created.Add(time.Hour)},
		Created: created, Updated: created,
		Facts: map[string]string{"from_version": "1.7.13"},
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustCreate(t *testing.T, s store.Store, r store.Run) store.Run {
	t.Helper()
	got, err := s.CreateRun(ctx(t), r)
	if err != nil {
		t.Fatalf("CreateRun(%s): %v", r.ID, err)
	}
	return got
}

func equalRuns(t *testing.T, got, want store.Run) {
	t.Helper()
	g, _ := json.Marshal(normalize(got))
	w, _ := json.Marshal(normalize(want))
	if string(g) != string(w) {
		t.Fatalf("run differs:\n got %s\nwant %s", g, w)
	}
}

// normalize makes times comparable across stores that keep microseconds.
func normalize(r store.Run) store.Run {
	tr := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	r.Created, r.Updated, r.Ended, r.LeaseUntil = tr(r.Created), tr(r.Updated), tr(r.Ended), tr(r.LeaseUntil)
	steps := make([]store.Step, len(r.Steps))
	for i, s := range r.Steps {
		s.Started, s.Ended = tr(s.Started), tr(s.Ended)
		steps[i] = s
	}
	r.Steps = steps
	if r.Checkpoint != nil {
		c := *r.Checkpoint
		c.Opened, c.Deadline = tr(c.Opened), tr(c.Deadline)
		r.Checkpoint = &c
	}
	return r
}

func testRunRoundTrip(t *testing.T, s store.Store) {
	r := mustCreate(t, s, NewRun("r1", "prod", t0))
	got, err := s.GetRun(ctx(t), "r1")
	if err != nil {
		t.Fatal(err)
	}
	equalRuns(t, got, r)

	r.Steps[1].Status, r.Steps[1].Ended, r.Current = store.StepDone, t0.Add(2*time.Second), 2
	r.SetFact("backup", "prod-1")
	r.Checkpoint = nil
	if err := s.UpdateRun(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetRun(ctx(t), "r1")
	equalRuns(t, got, r)

	if _, err := s.GetRun(ctx(t), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRun(nope) = %v, want ErrNotFound", err)
	}
	if err := s.UpdateRun(ctx(t), NewRun("nope", "prod", t0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateRun(nope) = %v, want ErrNotFound", err)
	}
	if _, err := s.CreateRun(ctx(t), NewRun("r1", "other", t0)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateRun with a used id = %v, want ErrExists", err)
	}
}

func testClusterLock(t *testing.T, s store.Store) {
	first := mustCreate(t, s, NewRun("r1", "prod", t0))
	busy, err := s.CreateRun(ctx(t), NewRun("r2", "prod", t0.Add(time.Minute)))
	if !errors.Is(err, store.ErrClusterBusy) {
		t.Fatalf("second run on prod: err = %v, want ErrClusterBusy", err)
	}
	if busy.ID != "r1" || busy.Requester != "U123" || busy.Procedure != "upgrade" {
		t.Fatalf("busy run = %s/%s/%s, want r1/upgrade/U123", busy.ID, busy.Procedure, busy.Requester)
	}
	mustCreate(t, s, NewRun("r3", "staging", t0)) // another cluster is free

	if a, err := s.ActiveRun(ctx(t), "prod"); err != nil || a.ID != "r1" {
		t.Fatalf("ActiveRun(prod) = %s, %v", a.ID, err)
	}
	first.State, first.Ended = store.StateSucceeded, t0.Add(time.Hour)
	if err := s.UpdateRun(ctx(t), first); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ActiveRun(ctx(t), "prod"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ActiveRun after finish = %v, want ErrNotFound", err)
	}
	mustCreate(t, s, NewRun("r4", "prod", t0.Add(2*time.Hour)))
}

func testConcurrentCreate(t *testing.T, s store.Store) {
	const n = 50
	var ok, busy atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateRun(context.Background(), NewRun(fmt.Sprintf("c%d", i), "prod", t0.Add(time.Duration(i))))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrClusterBusy):
				busy.Add(1)
			default:
				t.Errorf("CreateRun: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || busy.Load() != n-1 {
		t.Fatalf("%d concurrent starts: %d created, %d busy; want exactly 1 created", n, ok.Load(), busy.Load())
	}
}

func testListAndUnfinished(t *testing.T, s store.Store) {
	for i := range 5 {
		r := NewRun(fmt.Sprintf("r%d", i), fmt.Sprintf("c%d", i%2), t0.Add(time.Duration(i)*time.Minute))
		if i < 3 {
			r.State = store.StateSucceeded
		}
		// Finished runs on one cluster: create them one after another.
		mustCreate(t, s, r)
	}
	all, err := s.ListRuns(ctx(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if ids := runIDs(all); ids != "r4 r3 r2 r1 r0" {
		t.Fatalf("ListRuns = %s, want newest first r4 r3 r2 r1 r0", ids)
	}
	c0, _ := s.ListRuns(ctx(t), "c0", 2)
	if ids := runIDs(c0); ids != "r4 r2" {
		t.Fatalf("ListRuns(c0, 2) = %s, want r4 r2", ids)
	}
	un, err := s.UnfinishedRuns(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if ids := runIDs(un); ids != "r3 r4" {
		t.Fatalf("UnfinishedRuns = %s, want r3 r4", ids)
	}
}

func runIDs(rs []store.Run) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += " "
		}
		s += r.ID
	}
	return s
}

func testLeases(t *testing.T, s store.Store) {
	mustCreate(t, s, NewRun("r1", "prod", t0))
	now := time.Now()
	r, err := s.ClaimRun(ctx(t), "r1", "engine-a", now.Add(time.Minute))
	if err != nil || r.Owner != "engine-a" {
		t.Fatalf("claim by a: %v (owner %q)", err, r.Owner)
	}
	if _, err := s.ClaimRun(ctx(t), "r1", "engine-b", now.Add(time.Minute)); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("claim by b while a's lease is live = %v, want ErrNotOwner", err)
	}
	stolen := r
	stolen.Owner, stolen.State = "engine-b", store.StateAborted
	if err := s.UpdateRun(ctx(t), stolen); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("update by b = %v, want ErrNotOwner", err)
	}
	r.Current = 2
	if err := s.UpdateRun(ctx(t), r); err != nil {
		t.Fatalf("update by owner: %v", err)
	}
	// a renews, then its lease lapses: b may take over.
	if _, err := s.ClaimRun(ctx(t), "r1", "engine-a", now.Add(-time.Second)); err != nil {
		t.Fatalf("renew by a: %v", err)
	}
	r, err = s.ClaimRun(ctx(t), "r1", "engine-b", now.Add(time.Minute))
	if err != nil || r.Owner != "engine-b" || r.Current != 2 {
		t.Fatalf("takeover by b after lapse: %v (owner %q, current %d)", err, r.Owner, r.Current)
	}
	if err := s.ReleaseRun(ctx(t), "r1", "engine-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimRun(ctx(t), "r1", "engine-c", now.Add(time.Minute)); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}

func testDecisions(t *testing.T, s store.Store) {
	mustCreate(t, s, NewRun("r1", "prod", t0))
	d := store.Decision{RunID: "r1", Checkpoint: "verify-1", Action: store.ActionContinue, By: "U1", Via: "slack", At: t0}
	if _, err := s.Decide(ctx(t), d); err != nil {
		t.Fatal(err)
	}
	second := d
	second.Action, second.By = store.ActionRollback, "U2"
	got, err := s.Decide(ctx(t), second)
	if !errors.Is(err, store.ErrAlreadyDecided) || got.By != "U1" || got.Action != store.ActionContinue {
		t.Fatalf("second decision = %+v, %v; want the first (U1 continue) and ErrAlreadyDecided", got, err)
	}
	cancel := store.Decision{RunID: "r1", Action: store.ActionAbort, By: "U3", Via: "slack", At: t0.Add(time.Second)}
	if _, err := s.Decide(ctx(t), cancel); err != nil {
		t.Fatal(err)
	}
	all, err := s.Decisions(ctx(t), "r1")
	if err != nil || len(all) != 2 || all[0].By != "U1" || all[1].By != "U3" {
		t.Fatalf("Decisions = %+v, %v", all, err)
	}
	if other, _ := s.Decisions(ctx(t), "r10"); len(other) != 0 {
		t.Fatalf("decisions of r10 (a prefix cousin of r1) = %+v", other)
	}

	// Many quick clicks decide once.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Decide(context.Background(), store.Decision{RunID: "r1", Checkpoint: "verify-2", Action: store.ActionContinue, By: fmt.Sprint(i), At: t0})
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrAlreadyDecided) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("20 concurrent decisions: %d recorded, want 1", wins.Load())
	}
}

func testWatchDecisions(t *testing.T, s store.Store) {
	mustCreate(t, s, NewRun("r1", "prod", t0))
	c, cancel := context.WithCancel(ctx(t))
	ch, err := s.WatchDecisions(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(ctx(t), store.Decision{RunID: "r1", Checkpoint: "x", Action: store.ActionAbort, By: "U1", At: t0}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-ch:
		if id != "r1" {
			t.Fatalf("watch delivered %q, want r1", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification within 5 s of a decision")
	}
	cancel()
	for range ch { // closes once ctx ends
	}
}

func testAudit(t *testing.T, s store.Store) {
	for i := range 5 {
		e := store.AuditEntry{At: t0.Add(time.Duration(i) * time.Hour), User: "U1", Channel: "C1", Via: "slack",
			Action: fmt.Sprintf("/nocobase status %d", i), Outcome: "ok"}
		if i == 3 {
			e.RunID, e.Outcome = "r1", "refused: not an approver"
		}
		if err := s.AppendAudit(ctx(t), e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Audit(ctx(t), store.AuditQuery{})
	if err != nil || len(all) != 5 || all[0].Action != "/nocobase status 4" || all[0].ID == 0 {
		t.Fatalf("Audit = %+v, %v", all, err)
	}
	byRun, _ := s.Audit(ctx(t), store.AuditQuery{RunID: "r1"})
	if len(byRun) != 1 || byRun[0].Outcome != "refused: not an approver" {
		t.Fatalf("Audit(run r1) = %+v", byRun)
	}
	recent, _ := s.Audit(ctx(t), store.AuditQuery{Since: t0.Add(2 * time.Hour), Limit: 2})
	if len(recent) != 2 || recent[1].Action != "/nocobase status 3" {
		t.Fatalf("Audit(since, limit 2) = %+v", recent)
	}
	n, err := s.PruneAudit(ctx(t), t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PruneAudit = %d, %v; want 2", n, err)
	}
	left, _ := s.Audit(ctx(t), store.AuditQuery{})
	if len(left) != 3 {
		t.Fatalf("after prune %d entries, want 3", len(left))
	}
}

func testNotes(t *testing.T, s store.Store) {
	if _, err := s.GetNote(ctx(t), "slack-thread", "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing note = %v, want ErrNotFound", err)
	}
	for _, v := range []string{"C1/1700000000.000100", "C1/1700000000.000200"} {
		if err := s.PutNote(ctx(t), "slack-thread", "r1", v); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.GetNote(ctx(t), "slack-thread", "r1"); err != nil || v != "C1/1700000000.000200" {
		t.Fatalf("note = %q, %v", v, err)
	}
}

// An entry reads back as it was written: who, through which front, about
// which run, with what outcome.
func testAuditFields(t *testing.T, s store.Store) {
	at := time.Now().Truncate(time.Microsecond)
	want := store.AuditEntry{At: at, User: "terminal:ops", Channel: "C42", Via: "terminal",
		Action: "decide r7 rollback", RunID: "r7", Outcome: "refused: four-eyes: the requester may not decide"}
	if err := s.AppendAudit(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Audit(ctx(t), store.AuditQuery{})
	if err != nil || len(got) != 1 {
		t.Fatalf("Audit = %+v, %v; want one entry", got, err)
	}
	e := got[0]
	if e.ID == 0 || !e.At.Equal(at) || e.User != want.User || e.Channel != want.Channel || e.Via != want.Via ||
		e.Action != want.Action || e.RunID != want.RunID || e.Outcome != want.Outcome {
		t.Fatalf("audit entry read back as %+v, written as %+v", e, want)
	}
}

// AuditQuery.RunID selects exactly that run's entries (not a run whose id
// starts the same), newest first, with Since and Limit applied on top.
func testAuditByRun(t *testing.T, s store.Store) {
	runs := []string{"r1", "", "r10", "r1", "r2", "r1", ""}
	for i, id := range runs {
		e := store.AuditEntry{At: t0.Add(time.Duration(i) * time.Minute), User: "U1", Via: "slack",
			Action: fmt.Sprintf("action %d", i), RunID: id, Outcome: "ok"}
		if err := s.AppendAudit(ctx(t), e); err != nil {
			t.Fatal(err)
		}
	}
	actions := func(es []store.AuditEntry) string {
		out := ""
		for _, e := range es {
			if e.RunID != "r1" {
				t.Fatalf("AuditQuery{RunID: r1} returned an entry of run %q", e.RunID)
			}
			out += e.Action + ";"
		}
		return out
	}
	got, err := s.Audit(ctx(t), store.AuditQuery{RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(got); a != "action 5;action 3;action 0;" {
		t.Fatalf("entries of r1 = %s, want actions 5, 3, 0", a)
	}
	got, _ = s.Audit(ctx(t), store.AuditQuery{RunID: "r1", Limit: 2})
	if a := actions(got); a != "action 5;action 3;" {
		t.Fatalf("entries of r1, limit 2 = %s", a)
	}
	got, _ = s.Audit(ctx(t), store.AuditQuery{RunID: "r1", Since: t0.Add(3 * time.Minute)})
	if a := actions(got); a != "action 5;action 3;" {
		t.Fatalf("entries of r1 since minute 3 = %s", a)
	}
	if got, _ := s.Audit(ctx(t), store.AuditQuery{RunID: "r9"}); len(got) != 0 {
		t.Fatalf("entries of a run with none = %+v", got)
	}
}

func testSeenOnce(t *testing.T, s store.Store) {
	first, err := s.SeenOnce(ctx(t), "slack:v0=abc", time.Minute)
	if err != nil || !first {
		t.Fatalf("first sighting = %v, %v; want true", first, err)
	}
	if again, err := s.SeenOnce(ctx(t), "slack:v0=abc", time.Minute); err != nil || again {
		t.Fatalf("replay = %v, %v; want false", again, err)
	}
	if other, err := s.SeenOnce(ctx(t), "slack:v0=abd", time.Minute); err != nil || !other {
		t.Fatalf("another key = %v, %v; want true", other, err)
	}
	if _, err := s.SeenOnce(ctx(t), "", time.Minute); err == nil {
		t.Fatal("an empty key was accepted")
	}
	if _, err := s.SeenOnce(ctx(t), "k", 0); err == nil {
		t.Fatal("a zero time to keep was accepted")
	}

	// Once its time is up a key is new again.
	if first, _ := s.SeenOnce(ctx(t), "short", 300*time.Millisecond); !first {
		t.Fatal("first sighting of short = false")
	}
	if again, _ := s.SeenOnce(ctx(t), "short", 300*time.Millisecond); again {
		t.Fatal("short replayed at once = true")
	}
	time.Sleep(500 * time.Millisecond)
	if first, err := s.SeenOnce(ctx(t), "short", time.Minute); err != nil || !first {
		t.Fatalf("short after it expired = %v, %v; want true", first, err)
	}

	// Replicas racing on one request: exactly one handles it.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, err := s.SeenOnce(context.Background(), "race", time.Minute)
			if err != nil {
				t.Error(err)
			}
			if first {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("20 concurrent sightings of one key: %d first, want 1", wins.Load())
	}
}
