package procedures

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nocobot/nocobot/store"
)

// A run's lease lasts leaseTTL from its last confirmation; then another
// replica may claim the run. An engine that cannot confirm its lease
// within half that time stops acting on the run: its step is cancelled
// and no outside call begins, so by the time another replica may take
// over, the old owner has stopped (clocks of the replicas agreeing within
// the other half).

// errLeaseUnconfirmed refuses an outside call while the run's lease is
// not confirmed within half its time.
var errLeaseUnconfirmed = errors.New("this engine could not confirm its lease on the run (is the store reachable?): it stops acting before another engine may take the run over")

// errLeaseLost: another engine holds the run now.
var errLeaseLost = errors.New("another engine took the run over")

// lease is this engine's hold on one run, as the store last confirmed it.
type lease struct {
	ttl time.Duration

	mu        sync.Mutex
	confirmed time.Time // when the request that last confirmed it was sent
}

func newLease(ttl time.Duration, confirmed time.Time) *lease {
	return &lease{ttl: ttl, confirmed: confirmed}
}

// confirm records a renewal sent at sent that the store accepted.
func (l *lease) confirm(sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sent.After(l.confirmed) {
		l.confirmed = sent
	}
}

// staleAt is when the lease stops counting as held.
func (l *lease) staleAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed.Add(l.ttl / 2)
}

// check allows an outside call: the lease was confirmed within half its time.
func (l *lease) check() error {
	if !time.Now().Before(l.staleAt()) {
		return errLeaseUnconfirmed
	}
	return nil
}

// keepLease renews a run's lease while the run is driven here, and
// cancels the run (stop) when the lease cannot be confirmed in time or
// another engine holds it. It returns when ctx ends.
// stale tells the fronts, before the run is stopped.
func (e *Engine) keepLease(ctx context.Context, id string, l *lease, stop context.CancelCauseFunc, stale func()) {
	go e.renewLease(ctx, id, l, stop)
	for {
		wait := time.Until(l.staleAt())
		if wait <= 0 {
			e.log.Error().Str("run", id).Dur("lease", e.leaseTTL).
				Msg("could not confirm the lease on the run within half its time: stopping the run here before another engine may take it over")
			stale()
			stop(errLeaseUnconfirmed)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// renewLease claims the run again every sixth of the lease time: two
// renewals may fail before the lease counts as unconfirmed.
func (e *Engine) renewLease(ctx context.Context, id string, l *lease, stop context.CancelCauseFunc) {
	tick := time.NewTicker(e.leaseTTL / 6)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sent := time.Now()
		c, cancel := context.WithTimeout(ctx, e.leaseTTL/3)
		_, err := e.store.ClaimRun(c, id, e.owner, sent.Add(e.leaseTTL))
		cancel()
		switch {
		case err == nil:
			l.confirm(sent)
		case errors.Is(err, store.ErrNotOwner):
			// Our lease lapsed and another replica took the run: stop
			// driving it before acting on a cluster we no longer own.
			e.log.Warn().Str("run", id).Msg("lost the lease on a run; another engine drives it now")
			stop(errLeaseLost)
			return
		case ctx.Err() != nil:
			return
		default:
			e.log.Warn().Err(err).Str("run", id).Msg("could not renew the lease on a run")
		}
	}
}
