package metrics

import (
	"context"
	"strings"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Watch counts a subscription's events until ctx ends, then closes it.
// Events published before the subscription are not counted: subscribe
// before the engine starts.
func (m *Metrics) Watch(ctx context.Context, sub *events.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			m.Observe(ev)
		}
	}
}

// Observe counts one event.
func (m *Metrics) Observe(ev events.Event) {
	r := ev.Run
	switch ev.Kind {
	case events.RunStarted:
		m.runsStarted.WithLabelValues(r.Cluster, r.Procedure).Inc()
	case events.RunResumed:
		m.runsResumed.WithLabelValues(r.Cluster).Inc()
	case events.StepDone, events.StepFailed:
		if ev.Step < 0 || ev.Step >= len(r.Steps) {
			return
		}
		st := r.Steps[ev.Step]
		if st.Started.IsZero() || st.Ended.Before(st.Started) {
			return
		}
		outcome := "done"
		if ev.Kind == events.StepFailed {
			outcome = "failed"
		}
		m.stepSeconds.WithLabelValues(r.Cluster, r.Procedure, st.Name, outcome).Observe(st.Ended.Sub(st.Started).Seconds())
	case events.Decided:
		cp, d := r.Checkpoint, ev.Decision
		if cp == nil || d == nil || d.At.Before(cp.Opened) {
			return
		}
		m.checkpointWait.WithLabelValues(r.Cluster, r.Procedure, cp.Kind).Observe(d.At.Sub(cp.Opened).Seconds())
	case events.RunFinished:
		m.runsFinished.WithLabelValues(r.Cluster, r.Procedure, outcome(r.State)).Inc()
		if d, ok := procedures.Downtime(r); ok && d >= 0 {
			m.maintenanceSecs.WithLabelValues(r.Cluster, r.Procedure).Observe(d.Seconds())
		}
	case events.WindowAnnounced, events.WindowApproval, events.WindowStarted,
		events.WindowSkipped, events.WindowMissed, events.WindowOverrun:
		m.windowEvents.WithLabelValues(windowKind(ev.Kind)).Inc()
		if ev.Kind == events.WindowStarted && ev.Window != nil && !ev.Window.Start.IsZero() {
			m.windowLateness.Observe(max(ev.At.Sub(ev.Window.Start), 0).Seconds())
		}
	case events.Missed:
		m.eventsMissed.Inc()
	}
}

// windowKinds are the window events counted, each by windowKind.
var windowKinds = []events.Kind{events.WindowAnnounced, events.WindowApproval, events.WindowStarted,
	events.WindowSkipped, events.WindowMissed, events.WindowOverrun}

// windowKind is a window event's kind as a label value ("announced").
func windowKind(k events.Kind) string { return strings.TrimPrefix(string(k), "window.") }

// outcome is a run state as a label value.
func outcome(s store.RunState) string {
	return strings.ReplaceAll(string(s), " ", "_")
}
