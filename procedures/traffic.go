package procedures

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// trafficTimeout bounds one switch of the load balancer with its probe.
const trafficTimeout = 2 * time.Minute

// procTraffic is the run a switch of traffic by hand records: it holds
// the cluster's lock while the balancer switches, as a run would. It is
// no procedure a person starts.
const procTraffic = "traffic"

// TrafficBusyError: a run holds the cluster and is not stopped at a
// failure, so switching traffic by hand would fight it.
type TrafficBusyError struct{ Run store.Run }

func (e *TrafficBusyError) Error() string {
	return fmt.Sprintf("%s is held by run %s (%s), which is %s: traffic is the run's to switch", e.Run.Cluster, e.Run.ID, Title(e.Run), e.Run.State)
}

func (e *TrafficBusyError) Unwrap() error { return store.ErrClusterBusy }

// TrafficSwitch is what a switch by hand did.
type TrafficSwitch struct {
	Mode  ports.LBMode // what the balancer reports afterwards
	RunID string       // the run that held the cluster for the switch; "" when a stopped run held it
}

// SetTraffic switches a cluster's load balancer by hand, as a run would:
// to the app nodes (LBNormal) or to the maintenance page (LBMaintenance),
// confirmed by the balancer's probe where one is configured. It takes the
// cluster's lock like a run (a one-step run, by and via recorded), so no
// run starts in the middle of the switch. While a run holds the cluster
// it refuses with a *TrafficBusyError, unless that run has stopped at a
// failure: a person is then in charge of the cluster.
func (e *Engine) SetTraffic(ctx context.Context, cluster string, mode ports.LBMode, by, via string) (TrafficSwitch, error) {
	if mode != ports.LBNormal && mode != ports.LBMaintenance {
		return TrafficSwitch{}, fmt.Errorf("traffic %q: expected %s or %s", mode, ports.LBNormal, ports.LBMaintenance)
	}
	c, err := e.cluster(cluster)
	if err != nil {
		return TrafficSwitch{}, err
	}
	now := e.clock.Now()
	sent := time.Now()
	r := store.Run{
		ID: newRunID(now), Cluster: cluster, Procedure: procTraffic, Params: map[string]string{"mode": string(mode)},
		Requester: by, Via: via, State: store.StateRunning, Created: now, Updated: now,
		Owner: e.owner, LeaseUntil: sent.Add(trafficTimeout + e.leaseTTL),
		Steps: []store.Step{{Name: trafficStep.name, Title: trafficStep.title, Status: store.StepRunning, Started: now, Attempt: 1}},
	}
	held, err := e.store.CreateRun(ctx, r)
	switch {
	case errors.Is(err, store.ErrClusterBusy) && held.State == store.StateFailed:
		got, err := switchTraffic(ctx, c, mode)
		if err == nil {
			e.log.Info().Str("cluster", cluster).Str("mode", string(got)).Str("stopped_run", held.ID).Msg("traffic switched by hand")
		}
		return TrafficSwitch{Mode: got}, err
	case errors.Is(err, store.ErrClusterBusy):
		return TrafficSwitch{}, &TrafficBusyError{Run: held}
	case err != nil:
		return TrafficSwitch{}, fmt.Errorf("take the cluster's lock: %w", err)
	}
	// This engine drives the run now: its own resume of unfinished runs
	// must not take it.
	e.mu.Lock()
	e.running[r.ID] = &execution{cancel: func() {}, wake: make(chan struct{}, 1)}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.running, r.ID)
		e.mu.Unlock()
	}()
	got, serr := switchTraffic(ctx, c, mode)
	end := e.clock.Now()
	st := &r.Steps[0]
	st.Ended = end
	r.State, r.Ended, r.Updated = store.StateSucceeded, end, end
	if serr != nil {
		st.Status, st.Detail = store.StepFailed, serr.Error()
		r.State, r.Error = store.StateAborted, "the switch failed: "+serr.Error()
	} else {
		st.Status, st.Detail = store.StepDone, "load balancer reports: "+string(got)
	}
	// The lock is released even when the request that asked has ended.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	uerr := e.store.UpdateRun(uctx, r)
	cancel()
	if uerr != nil {
		uerr = fmt.Errorf("record the end of the switch (run %s keeps the cluster until nocobot serve or attach ends it): %w", r.ID, uerr)
	}
	e.log.Info().Str("cluster", cluster).Str("run", r.ID).Str("mode", string(got)).Err(serr).Msg("traffic switched by hand")
	return TrafficSwitch{Mode: got, RunID: r.ID}, errors.Join(serr, uerr)
}

// switchTraffic sets the balancer's mode and reads it back.
func switchTraffic(ctx context.Context, c *Cluster, mode ports.LBMode) (ports.LBMode, error) {
	sctx, cancel := context.WithTimeout(ctx, trafficTimeout)
	defer cancel()
	if err := c.Balancer.SetMode(sctx, mode); err != nil {
		return ports.LBUnknown, err
	}
	got, err := c.Balancer.Mode(sctx)
	if err != nil {
		return ports.LBUnknown, fmt.Errorf("switched, but reading the mode back failed: %w", err)
	}
	return got, nil
}

// trafficStep is the one step of a traffic run. A crash during the
// switch leaves it running: the engine that takes the run over repeats
// it, which is safe.
var trafficStep = stepDef{name: "lb-switch", title: "Switch the load balancer by hand", idempotent: true,
	do: func(ctx context.Context, env *stepEnv) (string, error) {
		got, err := switchTraffic(ctx, env.c, ports.LBMode(env.rn.run.Params["mode"]))
		if err != nil {
			return "", err
		}
		return "load balancer reports: " + string(got), nil
	}}
