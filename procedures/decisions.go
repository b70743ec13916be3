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
func (rn *runner) openDecision(kind, question string, retry bool) {
	var opts []store.Action
	if retry {
		opts = append(opts, store.ActionRetry)
	}
	if rn.canRollback() {
		opts = append(opts, store.ActionRollback)
		question += rn.rollbackNote()
	}
	opts = append(opts, store.ActionAbort)
	rn.run.Checkpoint = &store.Checkpoint{
		ID: fmt.Sprintf("%s-%d-%d", kind, rn.run.Current, rn.run.Steps[rn.run.Current].Attempt), Kind: kind,
		Step: rn.run.Current, Question: question, Options: opts, Opened: rn.e.clock.Now(),
	}
}

// canRollback: the procedure can be undone, is not undoing already, and
// has done something worth undoing.
func (rn *runner) canRollback() bool {
	if rn.run.State == store.StateRollingBack || len(rollbackSteps(&rn.run)) == 0 {
		return false
	}
	if rn.run.Current < len(rn.run.Steps) && rn.def(rn.run.Current).afterService {
		return false
	}
	for _, s := range rn.run.Steps {
		if s.Rollback {
			return false
		}
	}
	for i, s := range rn.run.Steps {
		if i > 0 && s.Status != store.StepPending {
			return true
		}
	}
	return false
}

func (rn *runner) openCheckpoint(ctx context.Context, i int, d stepDef) error {
	st := &rn.run.Steps[i]
	now := rn.e.clock.Now()
	st.Status, st.Started = store.StepWaiting, now
	st.Attempt++
	env := &stepEnv{rn: rn, c: rn.c, step: i}
	q, url := d.question(env)
	opts := []store.Action{store.ActionContinue}
	if rn.canRollback() {
		opts = append(opts, store.ActionRollback)
		q += rn.rollbackNote()
	}
	opts = append(opts, store.ActionAbort)
	cp := &store.Checkpoint{
		ID: fmt.Sprintf("%s-%d-%d", d.checkpoint, i, st.Attempt), Kind: d.checkpoint, Step: i,
		Question: q, Options: opts, URL: url, Opened: now,
	}
	if d.checkpoint == "verify" {
		cp.Deadline = now.Add(rn.c.CheckpointTimeout)
	}
	rn.run.Checkpoint = cp
	rn.run.State = store.StateWaiting
	if err := rn.persist(ctx); err != nil {
		return err
	}
	rn.e.publish(events.Checkpoint, rn.snapshot(), i, q, nil)
	return nil
}

// await waits for a decision on the open checkpoint, applying the
// timeout policy at its deadline.
func (rn *runner) await(ctx context.Context) error {
	cp := rn.run.Checkpoint
	if cp == nil {
		// A failed run always carries its question; rebuild one if a
		// record lacks it rather than wait forever.
		rn.openDecision("failure", "The run stopped. "+rn.describeCluster(ctx), true)
		cp = rn.run.Checkpoint
		if err := rn.persist(ctx); err != nil {
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
		if d, ok := rn.decisionFor(ctx, cp.ID); ok {
			if d.Action != store.ActionContinue {
				rn.stopEarly()
			}
			return rn.apply(ctx, d)
		}
		// Begun after the first look at the decisions: a decision recorded
		// before a restart is applied without starting anything.
		rn.beginEarly(ctx, cp)
		earlyLine, earlyDone := rn.earlyEvents()
		var deadline <-chan time.Time
		if !cp.Deadline.IsZero() && !decided && retry == nil {
			deadline = rn.e.clock.After(cp.Deadline.Sub(rn.e.clock.Now()))
		}
		select {
		case <-ctx.Done():
			rn.stopEarly()
			return errStop
		case msg := <-earlyLine:
			rn.earlyProgress(msg)
		case <-earlyDone:
			rn.earlyEnded()
		case <-rn.wake:
		case <-time.After(rn.e.poll):
		case <-retry:
			retry = nil
		case <-deadline:
			out, err := rn.onDeadline(ctx, cp)
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

func (rn *runner) decisionFor(ctx context.Context, cpID string) (store.Decision, bool) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ds, err := rn.e.store.Decisions(c, rn.run.ID)
	if err != nil {
		rn.e.log.Warn().Err(err).Str("run", rn.run.ID).Msg("could not read decisions")
		return store.Decision{}, false
	}
	for _, d := range ds {
		if d.Checkpoint == cpID || (d.Checkpoint == "" && d.Action == store.ActionAbort) {
			return d, true
		}
	}
	return store.Decision{}, false
}

func (rn *runner) onDeadline(ctx context.Context, cp *store.Checkpoint) (deadlineOutcome, error) {
	policy := rn.c.OnTimeout
	if cp.Kind != "verify" {
		policy = TimeoutRemind
	}
	// A roll-back over a site that served users since its backup throws
	// their writes away: only a person may choose that.
	if p, _ := lookup(rn.run.Procedure); p.liveWrites && policy == TimeoutRollback {
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
		d := store.Decision{RunID: rn.run.ID, Checkpoint: cp.ID, Action: action, By: "timeout", Via: "engine", At: rn.e.clock.Now()}
		// A person may have decided in the same instant: theirs wins.
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := rn.e.store.Decide(c, d)
		cancel()
		if err != nil && !errors.Is(err, store.ErrAlreadyDecided) {
			rn.e.log.Warn().Err(err).Str("run", rn.run.ID).Msg("could not record the timeout decision")
			return deadlineFailed, nil
		}
		if err == nil {
			// The engine's own decisions are in the audit log like a person's.
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			aerr := rn.e.store.AppendAudit(c, store.AuditEntry{At: d.At, User: "timeout", Via: "engine",
				Action: fmt.Sprintf("%s: no answer by %s", cp.ID, cp.Deadline.UTC().Format(time.RFC3339)), RunID: rn.run.ID, Outcome: "ok: " + string(action)})
			cancel()
			if aerr != nil {
				rn.e.log.Warn().Err(aerr).Str("run", rn.run.ID).Msg("could not audit the timeout decision")
			}
		}
		return deadlineDecided, nil
	}
	cp.Reminded++
	cp.Deadline = rn.e.clock.Now().Add(rn.c.CheckpointTimeout)
	if err := rn.persist(ctx); err != nil {
		return deadlineReminded, err
	}
	rn.e.publish(events.Reminder, rn.snapshot(), cp.Step, fmt.Sprintf("still waiting for a decision (reminder %d): %s", cp.Reminded, cp.Question), nil)
	return deadlineReminded, nil
}

// apply carries out a decision on the open checkpoint.
func (rn *runner) apply(ctx context.Context, d store.Decision) error {
	cp := rn.run.Checkpoint
	rn.e.publish(events.Decided, rn.snapshot(), cp.Step, fmt.Sprintf("%s chose %s", decider(d), d.Action), &d)
	st := &rn.run.Steps[cp.Step]
	now := rn.e.clock.Now()
	switch d.Action {
	case store.ActionAbort:
		return rn.abort(ctx, d)
	case store.ActionContinue:
		if cp.Kind == kindResume {
			// Start now: the waiting step runs as if never interrupted.
			st.Status, st.Detail = store.StepPending, ""
			rn.run.Checkpoint = nil
			rn.run.State = store.StateRunning
			break
		}
		st.Status, st.Ended, st.Detail = store.StepDone, now, fmt.Sprintf("continued by %s", decider(d))
		rn.run.Checkpoint = nil
		rn.run.State = store.StateRunning
		rn.run.Current = cp.Step + 1
	case store.ActionRetry:
		st.Status, st.Detail = store.StepPending, ""
		rn.run.Checkpoint = nil
		rn.run.State = store.StateRunning
		if st.Rollback {
			rn.run.State = store.StateRollingBack
		}
	case store.ActionRollback:
		return rn.startRollback(ctx, d)
	default:
		return fmt.Errorf("unknown action %q", d.Action)
	}
	return rn.persist(ctx)
}

func decider(d store.Decision) string {
	if d.ByName != "" {
		return d.ByName
	}
	return d.By
}

func (rn *runner) startRollback(ctx context.Context, d store.Decision) error {
	// The roll-back stops every node itself.
	rn.stopEarly()
	now := rn.e.clock.Now()
	for i := rn.run.Current; i < len(rn.run.Steps); i++ {
		st := &rn.run.Steps[i]
		switch st.Status {
		case store.StepWaiting:
			st.Status, st.Ended, st.Detail = store.StepDone, now, "roll back chosen by "+decider(d)
		case store.StepPending:
			st.Status, st.Detail = store.StepSkipped, "not run: rolled back"
		}
	}
	rn.run.Checkpoint = nil
	rn.run.State = store.StateRollingBack
	rn.run.Current = len(rn.run.Steps)
	for _, rd := range rollbackSteps(&rn.run) {
		rn.run.Steps = append(rn.run.Steps, store.Step{Name: rd.name, Title: rd.title, Status: store.StepPending, Rollback: true})
	}
	if err := rn.persist(ctx); err != nil {
		return err
	}
	rn.e.publish(events.RollingBack, rn.snapshot(), rn.run.Current, "rolling back, chosen by "+decider(d), &d)
	return nil
}

// rollbackNote warns, for a procedure that serves users while it runs,
// which writes a roll-back would throw away.
func (rn *runner) rollbackNote() string {
	p, _ := lookup(rn.run.Procedure)
	f := FactsOf(rn.run)
	if !p.liveWrites || f.BackupID() == "" {
		return ""
	}
	at := "when it was taken"
	if t, ok := f.BackupTaken(); ok {
		at = "at " + t.UTC().Format("2006-01-02 15:04 UTC")
	}
	return fmt.Sprintf(" Rolling back restores backup %s, taken %s: every write made since then is lost.", f.BackupID(), at)
}
