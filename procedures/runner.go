package procedures

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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
	question   func(rc *runCtx) (question, url string)
	do         func(ctx context.Context, rc *runCtx) (detail string, err error)
	// skip, for roll-back steps, says the step has nothing to undo.
	skip func(r *store.Run) bool
}

// runner drives one run on the engine that owns it.
type runner struct {
	e    *Engine
	c    *Cluster
	wake chan struct{}

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
	return stepDef{name: name, title: x.run.Steps[i].Title, do: func(context.Context, *runCtx) (string, error) {
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
				x.openDecision(ctx, "interrupted", fmt.Sprintf("Interrupted during %q, which is not safe to repeat blindly. %s Retry the step, roll back, or abort?", st.Title, x.describeCluster(ctx)))
				msg = fmt.Sprintf("interrupted during %q: waiting for a decision", st.Title)
			}
		}
	}
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.publish(EventRunResumed, x.snapshot(), x.run.Current, msg, nil)
	if x.run.Checkpoint != nil && (x.run.State == store.StateFailed) {
		x.e.publish(EventCheckpoint, x.snapshot(), x.run.Checkpoint.Step, x.run.Checkpoint.Question, nil)
	}
	return nil
}

func (x *runner) snapshot() store.Run {
	x.mu.Lock()
	defer x.mu.Unlock()
	return cloneRun(x.run)
}

// persist records the run. When the store is unreachable it keeps trying
// and the run pauses here, before its next outside action.
func (x *runner) persist(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		x.mu.Lock()
		x.run.Updated = x.e.clock.Now()
		x.run.Owner = x.e.owner
		x.run.LeaseUntil = time.Now().Add(x.e.leaseTTL)
		r := cloneRun(x.run)
		x.mu.Unlock()
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := x.e.store.UpdateRun(c, r)
		cancel()
		if err == nil {
			if x.storeDown {
				x.storeDown = false
				x.e.publish(EventStoreBack, r, r.Current, "the store is reachable again: going on", nil)
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
			x.e.publish(EventStoreDown, r, r.Current, "cannot record progress (store unreachable): paused before the next action until it is back", nil)
		}
		select {
		case <-ctx.Done():
			return errStop
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// cancelRequest returns an abort decision recorded outside a checkpoint.
func (x *runner) cancelRequest(ctx context.Context) (store.Decision, bool) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ds, err := x.e.store.Decisions(c, x.run.ID)
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

func (x *runner) step(ctx context.Context) error {
	i := x.run.Current
	d := x.def(i)
	st := &x.run.Steps[i]
	now := x.e.clock.Now()
	if d.skip != nil && d.skip(&x.run) {
		st.Status, st.Started, st.Ended, st.Detail = store.StepSkipped, now, now, "nothing to undo"
		x.run.Current++
		if err := x.persist(ctx); err != nil {
			return err
		}
		x.e.publish(EventStepSkipped, x.snapshot(), i, st.Title+": nothing to undo", nil)
		return nil
	}
	if d.checkpoint != "" {
		return x.openCheckpoint(ctx, i, d)
	}

	st.Status, st.Started, st.Ended = store.StepRunning, now, time.Time{}
	st.Attempt++
	st.Detail, st.Progress = "", ""
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.publish(EventStepStarted, x.snapshot(), i, st.Title, nil)

	sctx, cancel := context.WithTimeout(ctx, x.c.StepTimeout)
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
			case <-x.wake:
				if _, ok := x.cancelRequest(ctx); ok && d.idempotent {
					close(aborted)
					cancel()
					return
				}
			}
		}
	}()
	rc := &runCtx{x: x, c: x.c, step: i}
	detail, err := d.do(sctx, rc)
	close(stepDone)

	x.mu.Lock()
	st = &x.run.Steps[i]
	st.Ended = x.e.clock.Now()
	st.Progress = ""
	x.mu.Unlock()
	select {
	case <-aborted:
		st.Status, st.Detail = store.StepFailed, "interrupted by abort"
		return x.persist(ctx) // the loop sees the abort next
	default:
	}
	if err != nil && ctx.Err() != nil {
		// Shutdown or lost lease mid-step: leave it "running" so the
		// next owner applies the resume rules.
		return errStop
	}
	if err == nil {
		st.Status, st.Detail = store.StepDone, detail
		x.run.Current++
		if perr := x.persist(ctx); perr != nil {
			return perr
		}
		x.e.publish(EventStepDone, x.snapshot(), i, detail, nil)
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (the step took longer than %s)", err, x.c.StepTimeout)
	}
	st.Status, st.Detail = store.StepFailed, err.Error()
	x.e.log.Error().Err(err).Str("run", x.run.ID).Str("step", st.Name).Msg("step failed")
	x.run.State = store.StateFailed
	x.openDecision(ctx, "failure", fmt.Sprintf("%s failed: %s. %s", st.Title, err, x.describeCluster(ctx)))
	if perr := x.persist(ctx); perr != nil {
		return perr
	}
	x.e.publish(EventStepFailed, x.snapshot(), i, err.Error(), nil)
	x.e.publish(EventCheckpoint, x.snapshot(), i, x.run.Checkpoint.Question, nil)
	return nil
}

// openDecision puts a failure or interruption question on the run.
func (x *runner) openDecision(ctx context.Context, kind, question string) {
	opts := []store.Action{store.ActionRetry}
	if x.canRollback() {
		opts = append(opts, store.ActionRollback)
	}
	opts = append(opts, store.ActionAbort)
	x.run.Checkpoint = &store.Checkpoint{
		ID: fmt.Sprintf("%s-%d-%d", kind, x.run.Current, x.run.Steps[x.run.Current].Attempt), Kind: kind,
		Step: x.run.Current, Question: question, Options: opts, Opened: x.e.clock.Now(),
	}
}

// canRollback: the procedure can be undone, is not undoing already, and
// has done something worth undoing.
func (x *runner) canRollback() bool {
	if x.run.State == store.StateRollingBack || len(rollbackSteps(&x.run)) == 0 {
		return false
	}
	for _, s := range x.run.Steps {
		if s.Rollback {
			return false
		}
	}
	for i, s := range x.run.Steps {
		if i > 0 && s.Status != store.StepPending {
			return true
		}
	}
	return false
}

func (x *runner) openCheckpoint(ctx context.Context, i int, d stepDef) error {
	st := &x.run.Steps[i]
	now := x.e.clock.Now()
	st.Status, st.Started = store.StepWaiting, now
	st.Attempt++
	rc := &runCtx{x: x, c: x.c, step: i}
	q, url := d.question(rc)
	opts := []store.Action{store.ActionContinue}
	if x.canRollback() {
		opts = append(opts, store.ActionRollback)
	}
	opts = append(opts, store.ActionAbort)
	cp := &store.Checkpoint{
		ID: fmt.Sprintf("%s-%d-%d", d.checkpoint, i, st.Attempt), Kind: d.checkpoint, Step: i,
		Question: q, Options: opts, URL: url, Opened: now,
	}
	if d.checkpoint == "verify" {
		cp.Deadline = now.Add(x.c.CheckpointTimeout)
	}
	x.run.Checkpoint = cp
	x.run.State = store.StateWaiting
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.publish(EventCheckpoint, x.snapshot(), i, q, nil)
	return nil
}

// await waits for a decision on the open checkpoint, applying the
// timeout policy at its deadline.
func (x *runner) await(ctx context.Context) error {
	cp := x.run.Checkpoint
	if cp == nil {
		// A failed run always carries its question; rebuild one if a
		// record lacks it rather than wait forever.
		x.openDecision(ctx, "failure", "The run stopped. "+x.describeCluster(ctx))
		cp = x.run.Checkpoint
		if err := x.persist(ctx); err != nil {
			return err
		}
	}
	for {
		if d, ok := x.decisionFor(ctx, cp.ID); ok {
			return x.apply(ctx, d)
		}
		var deadline <-chan time.Time
		if !cp.Deadline.IsZero() {
			deadline = x.e.clock.After(cp.Deadline.Sub(x.e.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return errStop
		case <-x.wake:
		case <-time.After(x.e.poll):
		case <-deadline:
			if err := x.onDeadline(ctx, cp); err != nil {
				return err
			}
		}
	}
}

func (x *runner) decisionFor(ctx context.Context, cpID string) (store.Decision, bool) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ds, err := x.e.store.Decisions(c, x.run.ID)
	if err != nil {
		x.e.log.Warn().Err(err).Str("run", x.run.ID).Msg("could not read decisions")
		return store.Decision{}, false
	}
	for _, d := range ds {
		if d.Checkpoint == cpID || (d.Checkpoint == "" && d.Action == store.ActionAbort) {
			return d, true
		}
	}
	return store.Decision{}, false
}

func (x *runner) onDeadline(ctx context.Context, cp *store.Checkpoint) error {
	policy := x.c.OnTimeout
	if cp.Kind != "verify" {
		policy = TimeoutRemind
	}
	var action store.Action
	switch policy {
	case TimeoutRollback:
		action = store.ActionRollback
	case TimeoutAbort:
		action = store.ActionAbort
	}
	if action != "" && slices.Contains(cp.Options, action) {
		d := store.Decision{RunID: x.run.ID, Checkpoint: cp.ID, Action: action, By: "timeout", Via: "engine", At: x.e.clock.Now()}
		// A person may have decided in the same instant: theirs wins.
		if _, err := x.e.store.Decide(ctx, d); err != nil && !errors.Is(err, store.ErrAlreadyDecided) {
			x.e.log.Warn().Err(err).Str("run", x.run.ID).Msg("could not record the timeout decision")
		}
		return nil
	}
	cp.Reminded++
	cp.Deadline = x.e.clock.Now().Add(x.c.CheckpointTimeout)
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.publish(EventReminder, x.snapshot(), cp.Step, fmt.Sprintf("still waiting for a decision (reminder %d): %s", cp.Reminded, cp.Question), nil)
	return nil
}

// apply carries out a decision on the open checkpoint.
func (x *runner) apply(ctx context.Context, d store.Decision) error {
	cp := x.run.Checkpoint
	x.e.publish(EventDecided, x.snapshot(), cp.Step, fmt.Sprintf("%s chose %s", decider(d), d.Action), &d)
	st := &x.run.Steps[cp.Step]
	now := x.e.clock.Now()
	switch d.Action {
	case store.ActionAbort:
		return x.abort(ctx, d)
	case store.ActionContinue:
		st.Status, st.Ended, st.Detail = store.StepDone, now, fmt.Sprintf("continued by %s", decider(d))
		x.run.Checkpoint = nil
		x.run.State = store.StateRunning
		x.run.Current = cp.Step + 1
	case store.ActionRetry:
		st.Status, st.Detail = store.StepPending, ""
		x.run.Checkpoint = nil
		x.run.State = store.StateRunning
		if st.Rollback {
			x.run.State = store.StateRollingBack
		}
	case store.ActionRollback:
		return x.startRollback(ctx, d)
	default:
		return fmt.Errorf("unknown action %q", d.Action)
	}
	return x.persist(ctx)
}

func decider(d store.Decision) string {
	if d.ByName != "" {
		return d.ByName
	}
	return d.By
}

func (x *runner) startRollback(ctx context.Context, d store.Decision) error {
	now := x.e.clock.Now()
	for i := x.run.Current; i < len(x.run.Steps); i++ {
		st := &x.run.Steps[i]
		switch st.Status {
		case store.StepWaiting:
			st.Status, st.Ended, st.Detail = store.StepDone, now, "roll back chosen by "+decider(d)
		case store.StepPending:
			st.Status, st.Detail = store.StepSkipped, "not run: rolled back"
		}
	}
	x.run.Checkpoint = nil
	x.run.State = store.StateRollingBack
	x.run.Current = len(x.run.Steps)
	for _, rd := range rollbackSteps(&x.run) {
		x.run.Steps = append(x.run.Steps, store.Step{Name: rd.name, Title: rd.title, Status: store.StepPending, Rollback: true})
	}
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.publish(EventRollingBack, x.snapshot(), x.run.Current, "rolling back, chosen by "+decider(d), &d)
	return nil
}

func (x *runner) abort(ctx context.Context, d store.Decision) error {
	now := x.e.clock.Now()
	for i := range x.run.Steps {
		st := &x.run.Steps[i]
		switch st.Status {
		case store.StepPending, store.StepWaiting:
			st.Status, st.Detail = store.StepSkipped, "not run: aborted"
		case store.StepRunning:
			st.Status, st.Ended, st.Detail = store.StepFailed, now, "interrupted by abort"
		}
	}
	x.run.Checkpoint = nil
	x.run.State = store.StateAborted
	x.run.Ended = now
	x.run.Error = "aborted by " + decider(d)
	x.run.SetFact("final_state", x.describeCluster(ctx))
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.log.Info().Str("run", x.run.ID).Str("by", d.By).Msg("run aborted")
	x.e.publish(EventRunFinished, x.snapshot(), -1, Summary(x.snapshot()), &d)
	return nil
}

func (x *runner) finish(ctx context.Context) error {
	x.run.State = store.StateSucceeded
	for _, s := range x.run.Steps {
		if s.Rollback {
			x.run.State = store.StateRolledBack
			break
		}
	}
	x.run.Ended = x.e.clock.Now()
	x.run.SetFact("final_state", x.describeCluster(ctx))
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.log.Info().Str("run", x.run.ID).Str("state", string(x.run.State)).Msg("run finished")
	x.e.publish(EventRunFinished, x.snapshot(), -1, Summary(x.snapshot()), nil)
	return nil
}

// describeCluster says which nodes run which image and where traffic goes.
func (x *runner) describeCluster(ctx context.Context) string {
	return DescribeCluster(ctx, x.c)
}

// DescribeCluster says, in one line, which nodes run which image and where
// the load balancer sends traffic, e.g. "Nodes: app-1 running
// nocobase/nocobase:1.7.14, app-2 exited (…:1.7.13). Traffic: maintenance page (503)."
func DescribeCluster(ctx context.Context, c *Cluster) string {
	c1, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var b strings.Builder
	nodes, err := c.Nodes.List(c1)
	if err != nil {
		fmt.Fprintf(&b, "Nodes: unknown (%v).", err)
	} else {
		parts := make([]string, len(nodes))
		for i, n := range nodes {
			parts[i] = fmt.Sprintf("%s %s %s", n.Name, n.State, n.Image)
		}
		fmt.Fprintf(&b, "Nodes: %s.", strings.Join(parts, ", "))
	}
	mode, err := c.Balancer.Mode(c1)
	switch {
	case err != nil:
		fmt.Fprintf(&b, " Traffic: unknown (%v).", err)
	case mode == LBMaintenance:
		b.WriteString(" Traffic: maintenance page (503).")
	case mode == LBNormal:
		b.WriteString(" Traffic: to the app nodes.")
	default:
		fmt.Fprintf(&b, " Traffic: %s.", mode)
	}
	return b.String()
}

// runCtx is what a step sees of its run.
type runCtx struct {
	x    *runner
	c    *Cluster
	step int
}

func (rc *runCtx) fact(k string) string {
	rc.x.mu.Lock()
	defer rc.x.mu.Unlock()
	return rc.x.run.Fact(k)
}

func (rc *runCtx) setFact(k, v string) {
	rc.x.mu.Lock()
	defer rc.x.mu.Unlock()
	rc.x.run.SetFact(k, v)
}

func (rc *runCtx) param(k string) string { return rc.x.run.Params[k] }

// save records facts learned mid-step before the step's next outside action.
func (rc *runCtx) save(ctx context.Context) error { return rc.x.persist(ctx) }

// progress publishes a progress line for the running step.
func (rc *runCtx) progress(msg string) {
	x := rc.x
	x.mu.Lock()
	x.run.Steps[rc.step].Progress = msg
	snap := cloneRun(x.run)
	x.mu.Unlock()
	x.e.publish(EventStepProgress, snap, rc.step, msg, nil)
}
