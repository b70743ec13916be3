package procedures

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// openDecision puts a failure or interruption question on the run;
// retry is offered unless repeating the step cannot help.
func (x *runner) openDecision(kind, question string, retry bool) {
	var opts []store.Action
	if retry {
		opts = append(opts, store.ActionRetry)
	}
	if x.canRollback() {
		opts = append(opts, store.ActionRollback)
		question += x.rollbackNote()
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
	if x.run.Current < len(x.run.Steps) && x.def(x.run.Current).afterService {
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
	env := &stepEnv{rn: x, c: x.c, step: i}
	q, url := d.question(env)
	opts := []store.Action{store.ActionContinue}
	if x.canRollback() {
		opts = append(opts, store.ActionRollback)
		q += x.rollbackNote()
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
	x.e.publish(events.Checkpoint, x.snapshot(), i, q, nil)
	return nil
}

// await waits for a decision on the open checkpoint, applying the
// timeout policy at its deadline.
func (x *runner) await(ctx context.Context) error {
	cp := x.run.Checkpoint
	if cp == nil {
		// A failed run always carries its question; rebuild one if a
		// record lacks it rather than wait forever.
		x.openDecision("failure", "The run stopped. "+x.describeCluster(ctx), true)
		cp = x.run.Checkpoint
		if err := x.persist(ctx); err != nil {
			return err
		}
	}
	// Past the deadline the timer fires at once: after the policy has
	// decided it is not armed again, and a decision that could not be
	// recorded (the store is down) is retried with a growing pause.
	var (
		decided bool
		retry   <-chan time.Time
		backoff time.Duration
	)
	for {
		if d, ok := x.decisionFor(ctx, cp.ID); ok {
			return x.apply(ctx, d)
		}
		var deadline <-chan time.Time
		if !cp.Deadline.IsZero() && !decided && retry == nil {
			deadline = x.e.clock.After(cp.Deadline.Sub(x.e.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return errStop
		case <-x.wake:
		case <-time.After(x.e.poll):
		case <-retry:
			retry = nil
		case <-deadline:
			out, err := x.onDeadline(ctx, cp)
			if err != nil {
				return err
			}
			switch out {
			case deadlineDecided:
				decided = true
			case deadlineFailed:
				backoff = min(max(2*backoff, 200*time.Millisecond), 10*time.Second)
				retry = time.After(backoff)
			}
		}
	}
}

// deadlineOutcome is what applying the timeout policy did.
type deadlineOutcome int

const (
	deadlineReminded deadlineOutcome = iota // a new deadline is set
	deadlineDecided                         // a decision is recorded
	deadlineFailed                          // the decision could not be recorded
)

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

func (x *runner) onDeadline(ctx context.Context, cp *store.Checkpoint) (deadlineOutcome, error) {
	policy := x.c.OnTimeout
	if cp.Kind != "verify" {
		policy = TimeoutRemind
	}
	// A roll-back over a site that served users since its backup throws
	// their writes away: only a person may choose that.
	if p, _ := lookup(x.run.Procedure); p.liveWrites && policy == TimeoutRollback {
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
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := x.e.store.Decide(c, d)
		cancel()
		if err != nil && !errors.Is(err, store.ErrAlreadyDecided) {
			x.e.log.Warn().Err(err).Str("run", x.run.ID).Msg("could not record the timeout decision")
			return deadlineFailed, nil
		}
		if err == nil {
			// The engine's own decisions are in the audit log like a person's.
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			aerr := x.e.store.AppendAudit(c, store.AuditEntry{At: d.At, User: "timeout", Via: "engine",
				Action: fmt.Sprintf("%s: no answer by %s", cp.ID, cp.Deadline.UTC().Format(time.RFC3339)), RunID: x.run.ID, Outcome: "ok: " + string(action)})
			cancel()
			if aerr != nil {
				x.e.log.Warn().Err(aerr).Str("run", x.run.ID).Msg("could not audit the timeout decision")
			}
		}
		return deadlineDecided, nil
	}
	cp.Reminded++
	cp.Deadline = x.e.clock.Now().Add(x.c.CheckpointTimeout)
	if err := x.persist(ctx); err != nil {
		return deadlineReminded, err
	}
	x.e.publish(events.Reminder, x.snapshot(), cp.Step, fmt.Sprintf("still waiting for a decision (reminder %d): %s", cp.Reminded, cp.Question), nil)
	return deadlineReminded, nil
}

// apply carries out a decision on the open checkpoint.
func (x *runner) apply(ctx context.Context, d store.Decision) error {
	cp := x.run.Checkpoint
	x.e.publish(events.Decided, x.snapshot(), cp.Step, fmt.Sprintf("%s chose %s", decider(d), d.Action), &d)
	st := &x.run.Steps[cp.Step]
	now := x.e.clock.Now()
	switch d.Action {
	case store.ActionAbort:
		return x.abort(ctx, d)
	case store.ActionContinue:
		if cp.Kind == kindResume {
			// Start now: the waiting step runs as if never interrupted.
			st.Status, st.Detail = store.StepPending, ""
			x.run.Checkpoint = nil
			x.run.State = store.StateRunning
			break
		}
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
	x.e.publish(events.RollingBack, x.snapshot(), x.run.Current, "rolling back, chosen by "+decider(d), &d)
	return nil
}

func (x *runner) abort(ctx context.Context, d store.Decision) error {
	now := x.e.clock.Now()
	untouched := ChangedNothing(x.run)
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
	if untouched {
		// Nothing to settle or describe: the run ends and frees the
		// cluster at once, whatever outside system is unreachable.
		factWriter{r: &x.run}.setFinalState(nothingChanged)
	} else {
		if err := x.settleImages(ctx); err != nil {
			x.e.log.Warn().Err(err).Str("run", x.run.ID).Msg("abort: image changes left unsettled")
		}
		factWriter{r: &x.run}.setFinalState(x.describeCluster(ctx))
	}
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.log.Info().Str("run", x.run.ID).Str("by", d.By).Msg("run aborted")
	x.e.publish(events.RunFinished, x.snapshot(), -1, Summary(x.snapshot()), &d)
	return nil
}

func (x *runner) finish(ctx context.Context) error {
	if err := x.settleImages(ctx); err != nil {
		return x.failLastStep(ctx, err)
	}
	// The run ends only with every node it recorded at preflight there.
	if missing := x.missingNodes(ctx); len(missing) > 0 {
		return x.failLastStep(ctx, missingNodesError(missing))
	}
	x.run.State = store.StateSucceeded
	for _, s := range x.run.Steps {
		if s.Rollback {
			x.run.State = store.StateRolledBack
			break
		}
	}
	x.run.Ended = x.e.clock.Now()
	factWriter{r: &x.run}.setFinalState(x.describeCluster(ctx))
	if err := x.persist(ctx); err != nil {
		return err
	}
	x.e.log.Info().Str("run", x.run.ID).Str("state", string(x.run.State)).Msg("run finished")
	x.e.publish(events.RunFinished, x.snapshot(), -1, Summary(x.snapshot()), nil)
	return nil
}

// settleImages finishes image changes a crash interrupted, so no node's
// set-aside container outlives the run.
func (x *runner) settleImages(ctx context.Context) error {
	c, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	settled, err := x.c.Nodes.Cleanup(c)
	if err != nil {
		return fmt.Errorf("settle interrupted image changes: %w", err)
	}
	if len(settled) > 0 {
		x.e.log.Info().Str("run", x.run.ID).Strs("nodes", settled).Msg("settled interrupted image changes")
	}
	return nil
}

// missingNodes are the nodes recorded at preflight that cannot be found
// now; none when the nodes cannot be listed (the run ends on what it saw).
func (x *runner) missingNodes(ctx context.Context) []string {
	recorded := FactsOf(x.run).Nodes()
	if len(recorded) == 0 {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nodes, err := x.c.Nodes.List(c)
	if err != nil {
		return nil
	}
	_, missing := matchRecorded(nodes, recorded)
	return missing
}

// failLastStep turns the run's last step into a failure with a question.
func (x *runner) failLastStep(ctx context.Context, err error) error {
	i := len(x.run.Steps) - 1
	x.run.Current = i
	st := &x.run.Steps[i]
	st.Status, st.Detail = store.StepFailed, err.Error()
	x.run.State = store.StateFailed
	x.openDecision("failure", fmt.Sprintf("%s: %s. %s", st.Title, err, x.describeFailure(ctx, err)), true)
	if perr := x.persist(ctx); perr != nil {
		return perr
	}
	x.e.publish(events.StepFailed, x.snapshot(), i, err.Error(), nil)
	x.e.publish(events.Checkpoint, x.snapshot(), i, x.run.Checkpoint.Question, nil)
	return nil
}

// rollbackNote warns, for a procedure that serves users while it runs,
// which writes a roll-back would throw away.
func (x *runner) rollbackNote() string {
	p, _ := lookup(x.run.Procedure)
	f := FactsOf(x.run)
	if !p.liveWrites || f.BackupID() == "" {
		return ""
	}
	at := "when it was taken"
	if t, ok := f.BackupTaken(); ok {
		at = "at " + t.UTC().Format("2006-01-02 15:04 UTC")
	}
	return fmt.Sprintf(" Rolling back restores backup %s, taken %s: every write made since then is lost.", f.BackupID(), at)
}

// nothingChanged is the final state of a run aborted before its first change.
const nothingChanged = "Nothing was changed: the run stopped before its first change."

// ChangedNothing reports whether a run has not begun any step that
// changes the cluster: only its preflight (which reads) ran, if anything.
func ChangedNothing(r store.Run) bool {
	for _, s := range r.Steps {
		if s.Rollback {
			return false
		}
		if s.Name == "preflight" {
			continue
		}
		// A question waiting before a step (a resumed run asking to start)
		// has not begun it.
		if s.Attempt > 0 || (s.Status != store.StepPending && s.Status != store.StepSkipped && s.Status != store.StepWaiting) {
			return false
		}
	}
	return true
}
