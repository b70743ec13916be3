package procedures

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// stepDef defines one step of a procedure.
type stepDef struct {
	name, title string
	// idempotent steps are repeated after a crash and may be interrupted
	// by an abort; the others finish, and after a crash they stop the run
	// at a decision instead of running twice.
	idempotent bool
	// checkpoint, when set ("verify", "manual"), makes the step a question
	// for a person instead of an action.
	checkpoint string
	question   func(env *stepEnv) (question, url string)
	do         func(ctx context.Context, env *stepEnv) (detail string, err error)
	// meanwhile, for a checkpoint, runs while it waits; the next step
	// takes its outcome (runner.takeEarly). undoMeanwhile undoes it when
	// the run is aborted at the checkpoint (duringverify.go).
	meanwhile, undoMeanwhile func(ctx context.Context, env *stepEnv) (detail string, err error)
	// skip, for roll-back steps, says the step has nothing to undo.
	skip func(r *store.Run) bool
	// afterService: the procedure's work is done and users write again;
	// a failure here offers no roll back, which would throw their writes
	// away.
	afterService bool
}

// cancelRequest returns an abort decision recorded outside a checkpoint.
func (rn *runner) cancelRequest(ctx context.Context) (store.Decision, bool) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ds, err := rn.e.store.Decisions(c, rn.run.ID)
	if err != nil {
		return store.Decision{}, false
	}
	for _, d := range ds {
		if d.Checkpoint == "" && d.Action == store.ActionAbort {
			return d, true
		}
	}
	return store.Decision{}, false
}

func (rn *runner) step(ctx context.Context) error {
	i := rn.run.Current
	d := rn.def(i)
	st := &rn.run.Steps[i]
	now := rn.e.clock.Now()
	if d.skip != nil && d.skip(&rn.run) {
		st.Status, st.Started, st.Ended, st.Detail = store.StepSkipped, now, now, "nothing to undo"
		rn.run.Current++
		if err := rn.persist(ctx); err != nil {
			return err
		}
		rn.e.publish(events.StepSkipped, rn.snapshot(), i, st.Title+": nothing to undo", nil)
		return nil
	}
	if d.checkpoint != "" {
		return rn.openCheckpoint(ctx, i, d)
	}

	st.Status, st.Started, st.Ended = store.StepRunning, now, time.Time{}
	st.Attempt++
	st.Detail, st.Progress = "", ""
	if err := rn.persist(ctx); err != nil {
		return err
	}
	rn.e.publish(events.StepStarted, rn.snapshot(), i, st.Title, nil)

	sctx, cancel := context.WithTimeout(ctx, rn.c.StepTimeout)
	defer cancel()
	// An abort interrupts a step that is safe to interrupt; the others
	// (an image change, a restore) finish first.
	stepDone := make(chan struct{})
	aborted := make(chan struct{})
	go func() {
		for {
			select {
			case <-stepDone:
				return
			case <-rn.wake:
				if _, ok := rn.cancelRequest(ctx); ok && d.idempotent {
					close(aborted)
					cancel()
					return
				}
			}
		}
	}()
	env := &stepEnv{rn: rn, c: rn.c, step: i}
	detail, err := d.do(sctx, env)
	close(stepDone)

	rn.mu.Lock()
	st = &rn.run.Steps[i]
	st.Ended = rn.e.clock.Now()
	st.Progress = ""
	rn.mu.Unlock()
	// A step that finished as the abort arrived is done, not interrupted.
	select {
	case <-aborted:
		if err != nil {
			st.Status, st.Detail = store.StepFailed, "interrupted by abort"
			return rn.persist(ctx) // the loop sees the abort next
		}
	default:
	}
	if err != nil && (ctx.Err() != nil || errors.Is(err, errLeaseUnconfirmed)) {
		// Shutdown or lost lease mid-step: leave it "running" so the
		// next owner (maybe this engine again) applies the resume rules.
		return errStop
	}
	if err == nil {
		st.Status, st.Detail = store.StepDone, detail
		rn.run.Current++
		if perr := rn.persist(ctx); perr != nil {
			return perr
		}
		rn.e.publish(events.StepDone, rn.snapshot(), i, detail, nil)
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (the step took longer than %s)", err, rn.c.StepTimeout)
	}
	st.Status, st.Detail = store.StepFailed, err.Error()
	// Warn, not error: the run itself reports the failure to people (a
	// terminal shows errors from the log besides the run's own lines).
	rn.e.log.Warn().Err(err).Str("run", rn.run.ID).Str("step", st.Name).Msg("step failed")
	rn.run.State = store.StateFailed
	var nothing *errNothingToDo
	if rn.run.Via == ViaScheduler && ChangedNothing(rn.run) {
		return rn.endWindowRun(ctx, i, err)
	}
	rn.openDecision("failure", fmt.Sprintf("%s failed: %s. %s", st.Title, err, rn.describeFailure(ctx, err)), !errors.As(err, &nothing))
	if perr := rn.persist(ctx); perr != nil {
		return perr
	}
	rn.e.publish(events.StepFailed, rn.snapshot(), i, err.Error(), nil)
	rn.e.publish(events.Checkpoint, rn.snapshot(), i, rn.run.Checkpoint.Question, nil)
	return nil
}

// endWindowRun ends a window's run whose preflight failed before it
// changed anything: nobody may be watching, and a question held open
// would keep the cluster busy until someone answers. The engine records
// the abort itself (audited), the run's summary says what failed, and the
// window's next start tries again.
func (rn *runner) endWindowRun(ctx context.Context, i int, err error) error {
	st := &rn.run.Steps[i]
	rn.openDecision("failure", fmt.Sprintf("%s failed: %s. Nothing was changed; the window's next start tries again.", st.Title, err), false)
	if perr := rn.persist(ctx); perr != nil {
		return perr
	}
	rn.e.publish(events.StepFailed, rn.snapshot(), i, err.Error(), nil)
	cp := rn.run.Checkpoint
	d := store.Decision{RunID: rn.run.ID, Checkpoint: cp.ID, Action: store.ActionAbort, By: ViaScheduler, Via: "engine", At: rn.e.clock.Now()}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, derr := rn.e.store.Decide(c, d)
	cancel()
	if derr != nil && !errors.Is(derr, store.ErrAlreadyDecided) {
		// The question stays open for a person, as for any other run.
		rn.e.log.Warn().Err(derr).Str("run", rn.run.ID).Msg("could not record the abort of a window's run whose preflight failed")
		rn.e.publish(events.Checkpoint, rn.snapshot(), i, cp.Question, nil)
		return nil
	}
	if derr == nil {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		aerr := rn.e.store.AppendAudit(c, store.AuditEntry{At: d.At, User: ViaScheduler, Via: "engine",
			Action: fmt.Sprintf("%s: %s failed before any change", cp.ID, st.Title), RunID: rn.run.ID, Outcome: "ok: abort; the window's next start tries again"})
		cancel()
		if aerr != nil {
			rn.e.log.Warn().Err(aerr).Str("run", rn.run.ID).Msg("could not audit the abort of a window's run")
		}
	}
	return nil // the run's loop applies the decision next
}
