package procedures

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/store"
)

// Attach lets this engine drive run id when no live engine does (its
// owner stopped or was killed and the lease lapsed, or it was left).
// driving reports whether this engine drives it now; a run that another
// live engine drives, or a finished run, is returned as it is. The
// engine must be running (Run or RunOwn) to keep the lease.
func (e *Engine) Attach(ctx context.Context, id string) (run store.Run, driving bool, err error) {
	r, err := e.store.GetRun(ctx, id)
	if err != nil {
		return store.Run{}, false, err
	}
	e.mu.Lock()
	_, mine := e.running[id]
	e.mu.Unlock()
	if mine {
		return r, true, nil
	}
	if r.State.Finished() || (r.Owner != "" && r.Owner != e.owner && time.Now().Before(r.LeaseUntil)) {
		return r, false, nil
	}
	if _, err := e.cluster(r.Cluster); err != nil {
		return r, false, fmt.Errorf("run %s: %w", id, err)
	}
	sent := time.Now()
	claimed, err := e.store.ClaimRun(ctx, id, e.owner, sent.Add(e.leaseTTL))
	if errors.Is(err, store.ErrNotOwner) {
		// Another engine claimed it a moment before us: follow it.
		r, err = e.store.GetRun(ctx, id)
		return r, false, err
	}
	if err != nil {
		return r, false, err
	}
	e.log.Info().Str("run", id).Str("state", string(claimed.State)).Msg("attached: driving run")
	e.launch(ctx, claimed, true, sent)
	return claimed, true, nil
}

// Leave stops driving run id here and releases its lease at once, so
// that nocobot attach (or serve) on this store takes it over without
// waiting for the lease to lapse. The run stays as recorded.
func (e *Engine) Leave(ctx context.Context, id string) error {
	e.mu.Lock()
	x, ok := e.running[id]
	if ok {
		x.cancel()
	}
	e.mu.Unlock()
	for ok {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		e.mu.Lock()
		_, ok = e.running[id]
		e.mu.Unlock()
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return e.store.ReleaseRun(c, id, e.owner)
}
