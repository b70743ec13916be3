package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

// OpenB returns a new, empty store for one benchmark; the helper closes it.
type OpenB func(b *testing.B) store.Store

// BenchTransitions measures what the engine does between two outside
// actions: persist the whole run record, owner-fenced, one transition
// after another on one run of an upgrade's size. It reports transitions
// per second and the median and 99th-percentile latency of one.
func BenchTransitions(b *testing.B, open OpenB) {
	s := open(b)
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	r := NewRun("bench", "prod", now)
	for i := len(r.Steps); i < 16; i++ {
		r.Steps = append(r.Steps, store.Step{Name: fmt.Sprintf("step-%d", i), Title: "A step of a realistic run", Status: store.StepPending})
	}
	r.Owner, r.LeaseUntil = "engine-a", now.Add(time.Minute)
	if _, err := s.CreateRun(ctx, r); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	began := time.Now()
	for i := range b.N {
		st := &r.Steps[i%len(r.Steps)]
		st.Status, st.Attempt, st.Progress = store.StepRunning, st.Attempt+1, fmt.Sprintf("transition %d", i)
		r.Current = i % len(r.Steps)
		r.Updated = time.Now()
		r.LeaseUntil = r.Updated.Add(time.Minute)
		t := time.Now()
		if err := s.UpdateRun(ctx, r); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	elapsed := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "transitions/s")
	p50, p99 := Percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// Percentiles returns the median and the 99th percentile of ds.
func Percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}
