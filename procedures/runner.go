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
	// early is the work running while a checkpoint waits (start during
	// verify); only the drive goroutine touches this field.
	early *earlyStart
}

// errStop means the runner must stop driving the run (shutdown or lost
// ownership); the run stays as recorded for its next owner.
var errStop = errors.New("stop driving run")

func (rn *runner) drive(ctx context.Context, resumed bool) {
	defer rn.stopEarly()
	if resumed {
		if err := rn.resume(ctx); err != nil {
			return
		}
	}
	for !rn.run.State.Finished() {
		if ctx.Err() != nil {
			return
		}
		var err error
		switch rn.run.State {
		case store.StateWaiting, store.StateFailed:
			err = rn.await(ctx)
		default:
			if d, ok := rn.cancelRequest(ctx); ok {
				err = rn.abort(ctx, d)
			} else if rn.run.Current >= len(rn.run.Steps) {
				err = rn.finish(ctx)
			} else {
				err = rn.step(ctx)
			}
		}
		if err != nil {
			return
		}
	}
}

func (rn *runner) def(i int) stepDef {
	name := rn.run.Steps[i].Name
	for _, d := range append(forwardSteps(&rn.run), rollbackSteps(&rn.run)...) {
		if d.name == name {
			return d
		}
	}
	// A run recorded by another version of nocobot with a step this one
	// does not know: never guess, ask.
	return stepDef{name: name, title: rn.run.Steps[i].Title, do: func(context.Context, *stepEnv) (string, error) {
		return "", fmt.Errorf("this nocobot version does not know step %q", name)
	}}
}

// resume applies the crash rules to a run this engine has just claimed.
func (rn *runner) resume(ctx context.Context) error {
	msg := "resumed by " + rn.e.owner
	if rn.run.State == store.StateRunning || rn.run.State == store.StateRollingBack {
		if i := rn.run.Current; i < len(rn.run.Steps) && rn.run.Steps[i].Status == store.StepRunning {
			d := rn.def(i)
			st := &rn.run.Steps[i]
			if d.idempotent {
				st.Status = store.StepPending
				st.Progress = ""
				msg = fmt.Sprintf("resumed after an interruption: repeating %q, which is safe to repeat", st.Title)
			} else {
				st.Status = store.StepFailed
				st.Ended = rn.e.clock.Now()
				st.Detail = "interrupted (the bot stopped during this step)"
				rn.run.State = store.StateFailed
				rn.openDecision("interrupted", fmt.Sprintf("Interrupted during %q, which is not safe to repeat blindly. %s Retry the step, roll back, or abort?", st.Title, rn.describeCluster(ctx)), true)
				msg = fmt.Sprintf("interrupted during %q: waiting for a decision", st.Title)
			}
		}
	}
	if rn.beforeDowntime() {
		rn.askBeforeDowntime(ctx)
		msg = "resumed after an interruption, before the downtime began: waiting for a person to start it now, or abort"
	}
	if err := rn.persist(ctx); err != nil {
		return err
	}
	rn.e.publish(events.RunResumed, rn.snapshot(), rn.run.Current, msg, nil)
	if rn.run.Checkpoint != nil && (rn.run.State == store.StateFailed || rn.run.Checkpoint.Kind == kindResume) {
		rn.e.publish(events.Checkpoint, rn.snapshot(), rn.run.Checkpoint.Step, rn.run.Checkpoint.Question, nil)
	}
	return nil
}

func (rn *runner) snapshot() store.Run {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.run.Clone()
}

// persist records the run. When the store is unreachable it keeps trying
// and the run pauses here, before its next outside action.
func (rn *runner) persist(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		rn.mu.Lock()
		sent := time.Now()
		rn.run.Updated = rn.e.clock.Now()
		rn.run.Owner = rn.e.owner
		rn.run.LeaseUntil = sent.Add(rn.e.leaseTTL)
		r := rn.run.Clone()
		rn.mu.Unlock()
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := rn.e.store.UpdateRun(c, r)
		cancel()
		if err == nil {
			rn.lease.confirm(sent)
			if rn.storeDown {
				rn.storeDown = false
				rn.e.publish(events.StoreBack, r, r.Current, "the store is reachable again: going on", nil)
			}
			return nil
		}
		if errors.Is(err, store.ErrNotOwner) {
			rn.e.log.Warn().Str("run", r.ID).Msg("another engine owns this run now; stopping here")
			return errStop
		}
		if ctx.Err() != nil {
			return errStop
		}
		if !rn.storeDown {
			rn.storeDown = true
			rn.e.log.Error().Err(err).Str("run", r.ID).Msg("cannot record a transition; paused until the store is back")
			rn.e.publish(events.StoreDown, r, r.Current, "cannot record progress (store unreachable): paused before the next action until it is back", nil)
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
func (rn *runner) beforeDowntime() bool {
	p, ok := lookup(rn.run.Procedure)
	if !ok || p.downtime == "" || rn.run.State != store.StateRunning {
		return false
	}
	return !stepBegan(&rn.run, p.downtime)
}

// askBeforeDowntime stops a resumed run before its downtime: nobody may
// be watching, so a person starts it (or aborts).
func (rn *runner) askBeforeDowntime(ctx context.Context) {
	now := rn.e.clock.Now()
	st := &rn.run.Steps[rn.run.Current]
	st.Status, st.Started = store.StepWaiting, now
	rn.run.State = store.StateWaiting
	rn.run.Checkpoint = &store.Checkpoint{
		ID: fmt.Sprintf("%s-%d-%d", kindResume, rn.run.Current, st.Attempt), Kind: kindResume, Step: rn.run.Current,
		Question: fmt.Sprintf("nocobot restarted before the %s took the site down: start now, or abort? %s", rn.run.Procedure, rn.describeCluster(ctx)),
		Options:  []store.Action{store.ActionContinue, store.ActionAbort}, Opened: now,
	}
}
