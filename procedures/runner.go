package procedures

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// runner drives one run on the engine that owns it.
type runner struct {
	e *Engine
	// c is the cluster behind the run's lease: no call while it is unconfirmed.
	c     *Cluster
	lease *lease
	wake  chan struct{}

	mu  sync.Mutex // guards run against progress callbacks from adapters
	run store.Run

	storeDown bool
}

// errStop means the runner must stop driving the run (shutdown or lost
// ownership); the run stays as recorded for its next owner.
var errStop = errors.New("stop driving run")

func (x *runner) drive(ctx context.Context, resumed bool) {
	if resumed {
		if err := x.resume(ctx); err != nil {
			return
		}
	}
	for !x.run.State.Finished() {
		if ctx.Err() != nil {
			return
		}
		var err error
		switch x.run.State {
		case store.StateWaiting, store.StateFailed:
			err = x.await(ctx)
		default:
			if d, ok := x.cancelRequest(ctx); ok {
				err = x.abort(ctx, d)
			} else if x.run.Current >= len(x.run.Steps) {
				err = x.finish(ctx)
			} else {
				err = x.step(ctx)
			}
		}
		if err != nil {
			return
		}
	}
}

func (x *runner) def(i int) stepDef {
	name := x.run.Steps[i].Name
	for _, d := range append(forwardSteps(&x.run), rollbackSteps(&x.run)...) {
		if d.name == name {
			return d
		}
	}
	// A run recorded by another version of nocobot with a step this one
	// does not know: never guess, ask.
	return stepDef{name: name, title: x.run.Steps[i].Title, do: func(context.Context, *stepEnv) (string, error) {
		return "", fmt.Errorf("this nocobot version does not know step %q", name)
	}}
}

// resume applies the crash rules to a run this engine has just claimed.
func (x *runner) resume(ctx context.Context) error {
	msg := "resumed by " + x.e.owner
	if x.run.State == store.StateRunning || x.run.State == store.StateRollingBack {
		if i := x.run.Current; i < len(x.run.Steps) && x.run.Steps[i].Status == store.StepRunning {
			d := x.def(i)
			st := &x.run.Steps[i]
			if d.idempotent {
				st.Status = store.StepPending
				st.Progress = ""
				msg = fmt.Sprintf("resumed after an interruption: repeating %q, which is safe to repeat", st.Title)
			} else {
				st.Status = store.StepFailed
				st.Ended = x.e.clock.Now()
				st.Detail = "interrupted (the bot stopped during this step)"
				x.run.State = store.StateFailed
				x.openDecision("interrupted", fmt.Sprintf("Interrupted during %q, which is not safe to repeat blindly. %s Retry the step, roll back, or abort?", st.Title, x.describeCluster(ctx)), true)
				msg = fmt.Sprintf("interrupted during %q: waiting for a decision", st.Title)
			}
		}
	}
	if x.beforeDowntime() {
		x.askBeforeDowntime(ctx)
		msg = "resumed after an interruption, before the downtime began: waiting for a person to start it now, or abort"
	}
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.publish(events.RunResumed, x.snapshot(), x.run.Current, msg, nil)
	if x.run.Checkpoint != nil && (x.run.State == store.StateFailed || x.run.Checkpoint.Kind == kindResume) {
		x.e.publish(events.Checkpoint, x.snapshot(), x.run.Checkpoint.Step, x.run.Checkpoint.Question, nil)
	}
	return nil
}

func (x *runner) snapshot() store.Run {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.run.Clone()
}

// persist records the run. When the store is unreachable it keeps trying
// and the run pauses here, before its next outside action.
func (x *runner) persist(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		x.mu.Lock()
		sent := time.Now()
		x.run.Updated = x.e.clock.Now()
		x.run.Owner = x.e.owner
		x.run.LeaseUntil = sent.Add(x.e.leaseTTL)
		r := x.run.Clone()
		x.mu.Unlock()
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := x.e.store.UpdateRun(c, r)
		cancel()
		if err == nil {
			x.lease.confirm(sent)
			if x.storeDown {
				x.storeDown = false
				x.e.publish(events.StoreBack, r, r.Current, "the store is reachable again: going on", nil)
			}
			return nil
		}
		if errors.Is(err, store.ErrNotOwner) {
			x.e.log.Warn().Str("run", r.ID).Msg("another engine owns this run now; stopping here")
			return errStop
		}
		if ctx.Err() != nil {
			return errStop
		}
		if !x.storeDown {
			x.storeDown = true
			x.e.log.Error().Err(err).Str("run", r.ID).Msg("cannot record a transition; paused until the store is back")
			x.e.publish(events.StoreDown, r, r.Current, "cannot record progress (store unreachable): paused before the next action until it is back", nil)
		}
		select {
		case <-ctx.Done():
			return errStop
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// kindResume is the question a resumed run asks before its downtime.
const kindResume = "resume"

// beforeDowntime: the run goes forward and has not yet begun the step
// that takes the site down.
func (x *runner) beforeDowntime() bool {
	p, ok := lookup(x.run.Procedure)
	if !ok || p.downtime == "" || x.run.State != store.StateRunning {
		return false
	}
	return !stepBegan(&x.run, p.downtime)
}

// askBeforeDowntime stops a resumed run before its downtime: nobody may
// be watching, so a person starts it (or aborts).
func (x *runner) askBeforeDowntime(ctx context.Context) {
	now := x.e.clock.Now()
	st := &x.run.Steps[x.run.Current]
	st.Status, st.Started = store.StepWaiting, now
	x.run.State = store.StateWaiting
	x.run.Checkpoint = &store.Checkpoint{
		ID: fmt.Sprintf("%s-%d-%d", kindResume, x.run.Current, st.Attempt), Kind: kindResume, Step: x.run.Current,
		Question: fmt.Sprintf("nocobot restarted before the %s took the site down: start now, or abort? %s", x.run.Procedure, x.describeCluster(ctx)),
		Options:  []store.Action{store.ActionContinue, store.ActionAbort}, Opened: now,
	}
}
