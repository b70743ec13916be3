package procedures_test

import (
	"context"
	"errors"
	"os"
	"slices"
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

// crashingStore dies (refuses every write from then on) at the n-th
// transition, as a process killed right before that write would.
type crashingStore struct {
	store.Store
	n       int64
	count   atomic.Int64
	once    sync.Once
	crashed chan struct{}
}

var errCrashed = errors.New("crashed")

func (s *crashingStore) UpdateRun(ctx context.Context, r store.Run) error {
	if c := s.count.Add(1); s.n > 0 && c >= s.n {
		s.once.Do(func() { close(s.crashed) })
		return errCrashed
	}
	return s.Store.UpdateRun(ctx, r)
}

// drive answers every question until the run ends: continue at a verify,
// retry after a failure or an interruption.
func (h *harness) drive() (store.Run, []string) {
	h.t.Helper()
	var kinds []string
	for {
		ev := h.waitFor("checkpoint or end", func(ev events.Event) bool {
			return ev.Kind == events.Checkpoint || ev.Kind == events.RunFinished
		})
		if ev.Kind == events.RunFinished {
			return ev.Run, kinds
		}
		cp := ev.Run.Checkpoint
		kinds = append(kinds, cp.Kind)
		action := store.ActionContinue
		if cp.Kind == "failure" || cp.Kind == "interrupted" {
			action = store.ActionRetry
		}
		if _, err := h.eng.Decide(context.Background(), store.Decision{RunID: ev.Run.ID, Checkpoint: cp.ID, Action: action, By: "U2"}); err != nil && !errors.Is(err, store.ErrAlreadyDecided) {
			h.t.Fatal(err)
		}
	}
}

// TestCrashAtEveryTransition kills the engine at each recorded transition
// of an upgrade, starts a new engine on the same store file, and checks
// that the run ends as it should, never repeated a step that is unsafe to
// repeat without asking, and broke no safety rule.
func TestCrashAtEveryTransition(t *testing.T) { crashAtEveryTransition(t, upgrade()) }

// TestCrashAtEveryTransitionStartingDuringVerify is the same with the
// other nodes started while the verify checkpoint waits.
func TestCrashAtEveryTransitionStartingDuringVerify(t *testing.T) {
	req := upgrade()
	req.StartDuringVerify = on()
	crashAtEveryTransition(t, req)
}

func crashAtEveryTransition(t *testing.T, req procedures.Request) {
	// Count the transitions of an uninterrupted upgrade.
	var total int64
	{
		h := newHarness(t, cluster3())
		cs := &crashingStore{crashed: make(chan struct{})}
		h.restart(func(s store.Store) store.Store { cs.Store = s; return cs })
		h.startRun(req)
		if end, _ := h.drive(); end.State != store.StateSucceeded {
			t.Fatalf("uninterrupted run: %s", end.State)
		}
		total = cs.count.Load()
		h.stop()
	}
	if total < 15 {
		t.Fatalf("only %d transitions recorded", total)
	}
	for k := int64(1); k <= total; k++ {
		t.Run("", func(t *testing.T) {
			h := newHarness(t, cluster3())
			cs := &crashingStore{n: k, crashed: make(chan struct{})}
			h.restart(func(s store.Store) store.Store { cs.Store = s; return cs })
			r := h.startRun(req)
			for crashed := false; !crashed; {
				select {
				case <-cs.crashed:
					crashed = true
				case ev := <-h.sub.C:
					if ev.Kind == events.Checkpoint && ev.Run.Checkpoint.Kind == "verify" {
						h.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: ev.Run.Checkpoint.ID, Action: store.ActionContinue, By: "U2"})
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("no crash at transition %d", k)
				}
			}
			// What the crashed engine left in the file, before the new one resumes.
			recorded, _ := h.store.GetRun(context.Background(), r.ID)
			h.restart(nil)
			end, kinds := h.drive()
			if end.State != store.StateSucceeded {
				t.Fatalf("crash at transition %d: run ended %s", k, end.State)
			}
			if h.world.DBVersion() != "1.7.14" || h.world.LB() != ports.LBNormal || h.world.NodeState("app-3") != "running "+newImage {
				t.Fatalf("crash at transition %d: cluster db %s lb %s app-3 %s", k, h.world.DBVersion(), h.world.LB(), h.world.NodeState("app-3"))
			}
			checkSafe(t, h.world)
			cur := recorded.Steps[min(recorded.Current, len(recorded.Steps)-1)]
			if cur.Name == "set-image" && cur.Status == store.StepRunning {
				// Not safe to repeat: the new engine must ask first.
				if len(kinds) == 0 || kinds[0] != "interrupted" {
					t.Fatalf("crash during set-image: first question %v, want interrupted", kinds)
				}
			}
			if slices.Contains(kinds, "interrupted") && !(cur.Name == "set-image" && cur.Status == store.StepRunning) {
				t.Fatalf("asked about an interruption of %s (%s), which is safe to repeat", cur.Name, cur.Status)
			}
		})
	}
}

// BenchmarkTransition measures the engine's cost per persisted step
// transition with the embedded store (fsync included): first-start runs
// on a two-node in-process cluster, divided by their transitions.
func BenchmarkTransition(b *testing.B) {
	dir := b.TempDir()
	s, err := sqlite.Open(context.Background(), dir+"/nocobot.db", zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cs := &crashingStore{Store: s, crashed: make(chan struct{})}
	w := proctest.NewWorld(newImage, false, "app-1", "app-2")
	eng, err := procedures.New(procedures.Options{Store: cs, Clusters: []*procedures.Cluster{w.Cluster("prod")}, Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	sub := eng.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go eng.Run(ctx)
	time.Sleep(10 * time.Millisecond)
	b.ResetTimer()
	for range b.N {
		if _, err := eng.Start(ctx, procedures.Request{Cluster: "prod", Procedure: procedures.ProcStart, Requester: "U1"}); err != nil {
			b.Fatal(err)
		}
		for ev := range sub.C {
			if ev.Kind == events.RunFinished {
				break
			}
		}
	}
	b.StopTimer()
	n := cs.count.Load()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1e6, "ms/transition")
	b.ReportMetric(float64(n)/float64(b.N), "transitions/run")
}

// BenchmarkStoreSize10kRuns records 10,000 finished upgrade runs with all
// their steps and reports the file's size.
func BenchmarkStoreSize10kRuns(b *testing.B) {
	for range b.N {
		dir := b.TempDir()
		s, err := sqlite.Open(context.Background(), dir+"/nocobot.db", zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 10000 {
			r := finishedUpgrade(i, t0.Add(time.Duration(i)*time.Hour))
			if _, err := s.CreateRun(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		fi, _ := os.Stat(dir + "/nocobot.db")
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB/10k-runs")
	}
}

func finishedUpgrade(i int, at time.Time) store.Run {
	r := store.Run{ID: "r" + string(rune('a'+i%26)) + time.Duration(i).String(), Cluster: "prod", Procedure: "upgrade",
		Params: map[string]string{"version": "1.7.14"}, Requester: "U0123ABCD", Via: "slack", State: store.StateSucceeded,
		Created: at, Updated: at.Add(5 * time.Minute), Ended: at.Add(5 * time.Minute),
		Facts: map[string]string{"from_version": "1.7.13", "backup": "prod-20261122T020000Z", "image:app-1": oldImage, "image:app-2": oldImage,
			"image:app-3": oldImage, "target_image": newImage, "first_node": "app-1", "first_url": "http://10.0.0.11:13000",
			"downtime_start": at.Format(time.RFC3339Nano), "downtime_end": at.Add(4 * time.Minute).Format(time.RFC3339Nano),
			"final_state": "Nodes: app-1 running nocobase/nocobase:1.7.14, app-2 running nocobase/nocobase:1.7.14, app-3 running nocobase/nocobase:1.7.14. Traffic: to the app nodes."}}
	for _, n := range []string{"preflight", "lb-maintenance", "stop-nodes", "backup", "set-image", "start-first", "verify", "start-rest", "lb-normal"} {
		r.Steps = append(r.Steps, store.Step{Name: n, Title: "A step title of typical length for " + n, Status: store.StepDone,
			Started: at, Ended: at.Add(time.Minute), Attempt: 1, Detail: "app-1 healthy on 1.7.14 after 14.2s; app-2 healthy on 1.7.14 after 13.9s"})
	}
	return r
}
