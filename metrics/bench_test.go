package metrics_test

import (
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/metrics"
	"github.com/nocobot/nocobot/store"
)

// What counting one step event costs the metrics goroutine.
func BenchmarkObserveStepDone(b *testing.B) {
	m := metrics.New("prod")
	t0 := time.Now()
	ev := events.Event{Kind: events.StepDone, Step: 1, Run: store.Run{Procedure: "upgrade",
		Steps: []store.Step{{Name: "preflight"}, {Name: "backup", Started: t0, Ended: t0.Add(42 * time.Second)}}}}
	for b.Loop() {
		m.Observe(ev)
	}
}
