package procedures

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/store"
)

// trafficTimeout bounds one switch of the load balancer with its probe.
const trafficTimeout = 2 * time.Minute

// TrafficBusyError: a run holds the cluster and is not stopped at a
// failure, so switching traffic by hand would fight it.
type TrafficBusyError struct{ Run store.Run }

func (e *TrafficBusyError) Error() string {
	return fmt.Sprintf("%s is held by run %s (%s), which is %s: traffic is the run's to switch", e.Run.Cluster, e.Run.ID, Title(e.Run), e.Run.State)
}

func (e *TrafficBusyError) Unwrap() error { return store.ErrClusterBusy }

// SetTraffic switches a cluster's load balancer by hand, as a run would:
// to the app nodes (LBNormal) or to the maintenance page (LBMaintenance),
// confirmed by the balancer's probe where one is configured. While a run
// holds the cluster it refuses with a *TrafficBusyError, unless that run
// has stopped at a failure (a person is then in charge of the cluster).
// It returns the mode the balancer reports afterwards.
func (e *Engine) SetTraffic(ctx context.Context, cluster string, mode LBMode) (LBMode, error) {
	if mode != LBNormal && mode != LBMaintenance {
		return LBUnknown, fmt.Errorf("traffic %q: expected %s or %s", mode, LBNormal, LBMaintenance)
	}
	c, err := e.cluster(cluster)
	if err != nil {
		return LBUnknown, err
	}
	r, err := e.store.ActiveRun(ctx, cluster)
	switch {
	case err == nil && r.State != store.StateFailed:
		return LBUnknown, &TrafficBusyError{Run: r}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return LBUnknown, fmt.Errorf("read the cluster's active run: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, trafficTimeout)
	defer cancel()
	if err := c.Balancer.SetMode(sctx, mode); err != nil {
		return LBUnknown, err
	}
	got, err := c.Balancer.Mode(sctx)
	if err != nil {
		return LBUnknown, fmt.Errorf("switched, but reading the mode back failed: %w", err)
	}
	e.log.Info().Str("cluster", cluster).Str("mode", string(got)).Msg("traffic switched by hand")
	return got, nil
}
