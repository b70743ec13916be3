package procedures

import (
	"context"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// How a run ends: finish after its last step, abort when asked; both
// settle interrupted image changes and record where the cluster stands.

// abort ends the run where it stands, as d asked.
func (rn *runner) abort(ctx context.Context, d store.Decision) error {
	rn.undoEarly(ctx, rn.run.Checkpoint)
	now := rn.e.clock.Now()
	untouched := ChangedNothing(rn.run)
	for i := range rn.run.Steps {
		st := &rn.run.Steps[i]
		switch st.Status {
		case store.StepPending, store.StepWaiting:
			st.Status, st.Detail = store.StepSkipped, "not run: aborted"
		case store.StepRunning:
			st.Status, st.Ended, st.Detail = store.StepFailed, now, "interrupted by abort"
		}
	}
	rn.run.Checkpoint = nil
	rn.run.State = store.StateAborted
	rn.run.Ended = now
	rn.run.Error = "aborted by " + decider(d)
	if untouched {
		// Nothing to settle or describe: the run ends and frees the
		// cluster at once, whatever outside system is unreachable.
		factWriter{r: &rn.run}.setFinalState(nothingChanged)
	} else {
		if err := rn.settleImages(ctx); err != nil {
			rn.e.log.Warn().Err(err).Str("run", rn.run.ID).Msg("abort: image changes left unsettled")
		}
		factWriter{r: &rn.run}.setFinalState(rn.describeCluster(ctx))
	}
	if err := rn.persist(ctx); err != nil {
		return err
	}
	rn.e.log.Info().Str("run", rn.run.ID).Str("by", d.By).Msg("run aborted")
	rn.e.publish(events.RunFinished, rn.snapshot(), -1, Summary(rn.snapshot()), &d)
	return nil
}

// finish ends a run whose steps are all done: it succeeded, or rolled
// back when its steps include a roll-back.
func (rn *runner) finish(ctx context.Context) error {
	if err := rn.settleImages(ctx); err != nil {
		return rn.failLastStep(ctx, err)
	}
	// The run ends only with every node it recorded at preflight there.
	if missing := rn.missingNodes(ctx); len(missing) > 0 {
		return rn.failLastStep(ctx, missingNodesError(missing))
	}
	rn.run.State = store.StateSucceeded
	for _, s := range rn.run.Steps {
		if s.Rollback {
			rn.run.State = store.StateRolledBack
			break
		}
	}
	rn.run.Ended = rn.e.clock.Now()
	factWriter{r: &rn.run}.setFinalState(rn.describeCluster(ctx))
	if err := rn.persist(ctx); err != nil {
		return err
	}
	rn.e.log.Info().Str("run", rn.run.ID).Str("state", string(rn.run.State)).Msg("run finished")
	rn.e.publish(events.RunFinished, rn.snapshot(), -1, Summary(rn.snapshot()), nil)
	return nil
}

// settleImages finishes image changes a crash interrupted, so no node's
// set-aside container outlives the run.
func (rn *runner) settleImages(ctx context.Context) error {
	c, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	settled, err := rn.c.Nodes.Cleanup(c)
	if err != nil {
		return fmt.Errorf("settle interrupted image changes: %w", err)
	}
	if len(settled) > 0 {
		rn.e.log.Info().Str("run", rn.run.ID).Strs("nodes", settled).Msg("settled interrupted image changes")
	}
	return nil
}

// missingNodes are the nodes recorded at preflight that cannot be found
// now; none when the nodes cannot be listed (the run ends on what it saw).
func (rn *runner) missingNodes(ctx context.Context) []string {
	recorded := FactsOf(rn.run).Nodes()
	if len(recorded) == 0 {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nodes, err := rn.c.Nodes.List(c)
	if err != nil {
		return nil
	}
	_, missing := matchRecorded(nodes, recorded)
	return missing
}

// failLastStep turns the run's last step into a failure with a question.
func (rn *runner) failLastStep(ctx context.Context, err error) error {
	i := len(rn.run.Steps) - 1
	rn.run.Current = i
	st := &rn.run.Steps[i]
	st.Status, st.Detail = store.StepFailed, err.Error()
	rn.run.State = store.StateFailed
	rn.openDecision("failure", fmt.Sprintf("%s: %s. %s", st.Title, err, rn.describeFailure(ctx, err)), true)
	if perr := rn.persist(ctx); perr != nil {
		return perr
	}
	rn.e.publish(events.StepFailed, rn.snapshot(), i, err.Error(), nil)
	rn.e.publish(events.Checkpoint, rn.snapshot(), i, rn.run.Checkpoint.Question, nil)
	return nil
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
