package schedule

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

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
	"github.com/nocobot/nocobot/window"
)

// Figures for the closing note; run with
//
//	go test -run '^$' -bench 'Scheduler' -benchtime 10x ./schedule/
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
	began := time.Now()
	for i := range n {
		w := store.Window{
			ID: fmt.Sprintf("w-%05d", i), Cluster: fmt.Sprintf("c%d", i%50), Spec: specs[i%len(specs)], TZ: zones[i%len(zones)],
			Command: "upgrade 1.7.15", Duration: time.Hour, Announce: 30 * time.Minute, Created: now,
		}
		sched, _, err := window.ParseSpec(w.Spec, w.TZ)
		if err != nil {
			b.Fatal(err)
		}
		w.NextStart = sched.Next(now.Add(time.Hour)) // beyond the lead time: nothing due
		if err := st.PutWindow(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	if n > 0 {
		b.Logf("filling the store with %d windows took %s", n, time.Since(began).Round(time.Millisecond))
	}
	return st
}

func benchOptions(st store.Store, start func(context.Context, procedures.Request) (store.Run, error)) Options {
	return Options{Store: st, Clock: ports.SystemClock(), Log: zerolog.Nop(), Parse: parseCommand, Start: start}
}

// BenchmarkSchedulerStartup10k: from New to the end of the first pass
// (config sync, run recovery, the index loaded) with 10,000 windows in the
// store; reports the heap the scheduler keeps afterwards, what the
// start-up allocated, a steady-state pass and a reload of the index.
func BenchmarkSchedulerStartup10k(b *testing.B) {
	const n = 10_000
	st := benchStore(b, n, time.Now())
	nop := func(context.Context, procedures.Request) (store.Run, error) { return store.Run{}, nil }
	var retained, allocated uint64
	var pass, reload time.Duration
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := New(benchOptions(st, nop))
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
		if got := s.indexed(); got != n {
			b.Fatalf("%d windows in the index, want %d", got, n)
		}
		t := time.Now()
		s.pass(ctx)
		pass = time.Since(t)
		t = time.Now()
		if err := s.reload(ctx); err != nil {
			b.Fatal(err)
		}
		reload = time.Since(t)
		runtime.KeepAlive(s)
		cancel()
		<-done
		b.StartTimer()
	}
	b.ReportMetric(float64(allocated)/(1<<20), "MB-allocated/startup")
	b.ReportMetric(float64(retained)/(1<<20), "MB-retained")
	b.ReportMetric(float64(pass.Microseconds())/1000, "ms/pass")
	b.ReportMetric(float64(reload.Microseconds())/1000, "ms/reload")
}

// BenchmarkSchedulerStartLateness measures how far real start times fall
// from planned ones with the wall clock: 20 windows 25 ms apart, written to
// the store as another replica would and seen at a reload, alone and among
// 10,000 others; the last case reloads the index every second instead of
// every 30 s, so that reloads of 10,000 windows overlap the starts.
func BenchmarkSchedulerStartLateness(b *testing.B) {
	for _, c := range []struct {
		others int
		reload time.Duration
	}{{0, defaultReload}, {10_000, defaultReload}, {10_000, time.Second}} {
		b.Run(fmt.Sprintf("others=%d/reload=%s", c.others, c.reload), func(b *testing.B) {
			st := benchStore(b, c.others, time.Now())
			var lates []time.Duration
			b.ResetTimer()
			for i := range b.N {
				lates = append(lates, measureLateness(b, st, c.reload, fmt.Sprintf("lat%d", i), 20)...)
			}
			slices.Sort(lates)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(lates[len(lates)/2]), "ms-late-p50")
			b.ReportMetric(ms(lates[len(lates)*95/100]), "ms-late-p95")
			b.ReportMetric(ms(lates[len(lates)*99/100]), "ms-late-p99")
			b.ReportMetric(ms(lates[len(lates)-1]), "ms-late-max")
		})
	}
}

func measureLateness(b *testing.B, st store.Store, reload time.Duration, prefix string, n int) []time.Duration {
	ctx := context.Background()
	var mu sync.Mutex
	planned := map[string]time.Time{}
	var lates []time.Duration
	all := make(chan struct{})
	start := func(_ context.Context, req procedures.Request) (store.Run, error) {
		at := time.Now()
		id, _ := requesterWindow(req.Requester)
		mu.Lock()
		defer mu.Unlock()
		lates = append(lates, at.Sub(planned[id]))
		if len(lates) == n {
			close(all)
		}
		return store.Run{ID: "r-" + id}, nil
	}
	s, err := New(benchOptions(st, start))
	if err != nil {
		b.Fatal(err)
	}
	s.reloadEvery = reload
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
	base := time.Now().Add(3 * time.Second)
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
	if err := s.reload(runCtx); err != nil { // as the periodic reload would
		b.Fatal(err)
	}
	if late := time.Since(base); late > 0 {
		b.Fatalf("writing and loading the windows ended %s after the first start: give them more time", late)
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("only %d of %d windows started", len(lates), n)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(lates)
}
