package procedures

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// Figures for the closing note of issue 7; run with
//
//	go test -run '^$' -bench 'Scheduler' -benchtime 3x ./procedures/
//
// They are benchmarks rather than tests because filling a store with
// 10,000 windows (each write fsync'd) takes a while.

// benchStore opens a store holding n windows with a spread of expressions
// and zones, all due in the future (the normal start-up).
func benchStore(b *testing.B, n int, now time.Time) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "nocobot.db"), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	specs := []string{"0 2 * * 6", "30 1 * * *", "@weekly", "15 3 1 * *", "0 */6 * * *", "45 23 * * 0"}
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"}
	ctx := context.Background()
	for i := range n {
		w := store.Window{
			ID: fmt.Sprintf("w-%05d", i), Cluster: fmt.Sprintf("c%d", i%50), Spec: specs[i%len(specs)], TZ: zones[i%len(zones)],
			Command: "upgrade 1.7.15", Duration: time.Hour, Announce: 30 * time.Minute, Created: now,
		}
		sched, _, err := ParseWindowSpec(w.Spec, w.TZ)
		if err != nil {
			b.Fatal(err)
		}
		w.NextStart = sched.Next(now.Add(time.Hour)) // beyond the lead time: nothing due
		if err := st.PutWindow(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// BenchmarkSchedulerStartup10k: from NewScheduler to the end of the first
// pass (config sync, run recovery, every window examined) with 10,000
// windows in the store; reports the heap the scheduler keeps afterwards,
// what the start-up allocated, and a steady-state pass.
func BenchmarkSchedulerStartup10k(b *testing.B) {
	const n = 10_000
	now := time.Now()
	t0 := time.Now()
	st := benchStore(b, n, now)
	b.Logf("filling the store with %d windows took %s", n, time.Since(t0).Round(time.Millisecond))
	nop := func(context.Context, store.Window) (store.Run, error) { return store.Run{}, nil }
	var retained, allocated uint64
	var pass time.Duration
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := NewScheduler(SchedulerOptions{Store: st, Clock: SystemClock(), Log: zerolog.Nop(), StartRun: nop})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan struct{})
		var once sync.Once
		s.afterPass = func(int64) { once.Do(func() { close(first) }) }
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		<-first
		b.StopTimer()
		runtime.ReadMemStats(&after)
		allocated = after.TotalAlloc - before.TotalAlloc
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
		t := time.Now()
		s.pass(ctx)
		pass = time.Since(t)
		runtime.KeepAlive(s)
		cancel()
		<-done
		b.StartTimer()
	}
	b.ReportMetric(float64(allocated)/(1<<20), "MB-allocated/startup")
	b.ReportMetric(float64(retained)/(1<<20), "MB-retained")
	b.ReportMetric(float64(pass.Microseconds())/1000, "ms/pass")
}

// BenchmarkSchedulerStartLateness measures how far real start times fall
// from planned ones with the wall clock: windows whose NextStart is set
// 100 ms ahead (25 ms apart) in the store, alone and among 10,000 others.
func BenchmarkSchedulerStartLateness(b *testing.B) {
	for _, others := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			st := benchStore(b, others, time.Now())
			var lates []time.Duration
			b.ResetTimer()
			for i := range b.N {
				lates = append(lates, measureLateness(b, st, fmt.Sprintf("lat%d", i), 20)...)
			}
			slices.Sort(lates)
			b.ReportMetric(float64(lates[len(lates)/2].Microseconds())/1000, "ms-late-p50")
			b.ReportMetric(float64(lates[len(lates)*95/100].Microseconds())/1000, "ms-late-p95")
			b.ReportMetric(float64(lates[len(lates)-1].Microseconds())/1000, "ms-late-max")
		})
	}
}

func measureLateness(b *testing.B, st store.Store, prefix string, n int) []time.Duration {
	ctx := context.Background()
	var mu sync.Mutex
	planned := map[string]time.Time{}
	var lates []time.Duration
	all := make(chan struct{})
	startRun := func(_ context.Context, w store.Window) (store.Run, error) {
		at := time.Now()
		mu.Lock()
		defer mu.Unlock()
		lates = append(lates, at.Sub(planned[w.ID]))
		if len(lates) == n {
			close(all)
		}
		return store.Run{ID: "r-" + w.ID}, nil
	}
	s, err := NewScheduler(SchedulerOptions{Store: st, Clock: SystemClock(), Log: zerolog.Nop(), StartRun: startRun})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
		for id := range planned {
			_ = st.DeleteWindow(ctx, id)
		}
	}()
	base := time.Now().Add(100 * time.Millisecond)
	mu.Lock()
	for i := range n {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		// NextStart is the truth: the scheduler opens the window then,
		// whatever the expression (its next start is a minute away).
		w := store.Window{ID: id, Cluster: "bench-" + id, Spec: "* * * * *", TZ: "UTC", Command: "start", Duration: time.Hour,
			NextStart: base.Add(time.Duration(i) * 25 * time.Millisecond)}
		planned[id] = w.NextStart
		if err := st.PutWindow(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	mu.Unlock()
	s.nudge()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		b.Fatalf("only %d of %d windows started", len(lates), n)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(lates)
}
