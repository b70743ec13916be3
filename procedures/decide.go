package procedures

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nocobot/nocobot/store"
)

// DecisionRefusal is why the engine does not record a decision.
type DecisionRefusal int

const (
	DecisionNoRun      DecisionRefusal = iota + 1 // no such run (errors.Is store.ErrNotFound)
	DecisionFinished                              // the run has finished
	DecisionNotWaiting                            // the run asks nothing now
	DecisionClosed                                // that checkpoint is closed (errors.Is store.ErrAlreadyDecided)
	DecisionNotOption                             // the checkpoint does not offer the action
)

// DecisionError refuses a decision. Run is the run as the engine read
// it (empty for DecisionNoRun), so the caller words its answer without
// reading the run again.
type DecisionError struct {
	Why        DecisionRefusal
	Run        store.Run
	Checkpoint string // the checkpoint the decision was about
	Action     store.Action
	Err        error // the store's error, when it refused
}

func (e *DecisionError) Error() string {
	id := e.Run.ID
	switch e.Why {
	case DecisionNoRun:
		return fmt.Sprintf("run %s: %v", id, e.Err)
	case DecisionFinished:
		return fmt.Sprintf("run %s is already %s", id, e.Run.State)
	case DecisionNotWaiting:
		return fmt.Sprintf("run %s asks nothing now (it is %s)", id, e.Run.State)
	case DecisionClosed:
		if e.Checkpoint == "" {
			// a cancel: an abort was asked before
			return store.ErrAlreadyDecided.Error()
		}
		return fmt.Sprintf("run %s: checkpoint %s is no longer open: %v", id, e.Checkpoint, store.ErrAlreadyDecided)
	case DecisionNotOption:
		var opts []store.Action
		if e.Run.Checkpoint != nil {
			opts = e.Run.Checkpoint.Options
		}
		return fmt.Sprintf("run %s: %s is not an option here (options: %s)", id, e.Action, joinActions(opts))
	}
	return fmt.Sprintf("run %s: decision refused", id)
}

// Is makes a missing run a store.ErrNotFound and a closed checkpoint a
// store.ErrAlreadyDecided.
func (e *DecisionError) Is(target error) bool {
	switch e.Why {
	case DecisionNoRun:
		return target == store.ErrNotFound
	case DecisionClosed:
		return target == store.ErrAlreadyDecided
	}
	return false
}

func (e *DecisionError) Unwrap() error { return e.Err }

// DecisionRules are the caller's own rules on a decision (who may
// decide, the four-eyes rule), asked with the run as the engine read it;
// an error they return refuses the decision and is returned as is.
type DecisionRules interface {
	// MayDecide is asked once the run is found.
	MayDecide(r store.Run) error
	// MayChoose is asked once the checkpoint is open and offers a.
	MayChoose(r store.Run, cp store.Checkpoint, a store.Action) error
}

// Decide records a decision on a run's checkpoint (d.Checkpoint "": the
// one open now), checked against the options it offers. The run's
// owner (this engine or another replica) acts on it.
func (e *Engine) Decide(ctx context.Context, d store.Decision) (store.Decision, error) {
	return e.DecideAs(ctx, d, nil)
}

// DecideAs is Decide under the caller's rules (nil: none). The run is
// read once; a refusal is a *DecisionError or the rules' error. The
// store decides once in any case: two decisions racing, the second gets
// a DecisionClosed.
func (e *Engine) DecideAs(ctx context.Context, d store.Decision, rules DecisionRules) (store.Decision, error) {
	return e.decide(ctx, d, rules, false)
}

// Cancel asks a run to abort: the current step ends, or is interrupted
// where that is safe, and the run stops, reporting the cluster's state.
func (e *Engine) Cancel(ctx context.Context, runID, by, via string) error {
	return e.CancelAs(ctx, runID, by, via, nil)
}

// CancelAs is Cancel under the caller's rules (nil: none; only
// MayDecide is asked), refused as DecideAs refuses.
func (e *Engine) CancelAs(ctx context.Context, runID, by, via string, rules DecisionRules) error {
	_, err := e.decide(ctx, store.Decision{RunID: runID, Action: store.ActionAbort, By: by, Via: via}, rules, true)
	if errors.Is(err, store.ErrAlreadyDecided) {
		return fmt.Errorf("run %s is already being aborted (%w)", runID, err)
	}
	return err
}

// decide reads the run once and checks the decision against it. cancel:
// an abort outside any checkpoint (d.Checkpoint stays "").
func (e *Engine) decide(ctx context.Context, d store.Decision, rules DecisionRules, cancel bool) (store.Decision, error) {
	r, err := e.store.GetRun(ctx, d.RunID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Decision{}, &DecisionError{Why: DecisionNoRun, Checkpoint: d.Checkpoint, Action: d.Action, Err: err, Run: store.Run{ID: d.RunID}}
	}
	if err != nil {
		return store.Decision{}, err
	}
	refuse := func(why DecisionRefusal, serr error) error {
		return &DecisionError{Why: why, Run: r, Checkpoint: d.Checkpoint, Action: d.Action, Err: serr}
	}
	if rules != nil {
		if err := rules.MayDecide(r); err != nil {
			return store.Decision{}, err
		}
	}
	if r.State.Finished() {
		return store.Decision{}, refuse(DecisionFinished, nil)
	}
	if !cancel {
		cp := r.Checkpoint
		if d.Checkpoint == "" {
			if cp == nil {
				return store.Decision{}, refuse(DecisionNotWaiting, nil)
			}
			d.Checkpoint = cp.ID
		}
		if cp == nil || cp.ID != d.Checkpoint {
			return store.Decision{}, refuse(DecisionClosed, nil)
		}
		if !slices.Contains(cp.Options, d.Action) {
			return store.Decision{}, refuse(DecisionNotOption, nil)
		}
		if rules != nil {
			if err := rules.MayChoose(r, *cp, d.Action); err != nil {
				return store.Decision{}, err
			}
		}
	}
	if d.At.IsZero() {
		d.At = e.clock.Now()
	}
	got, err := e.store.Decide(ctx, d)
	if errors.Is(err, store.ErrAlreadyDecided) {
		return got, refuse(DecisionClosed, err)
	}
	if err == nil {
		e.wakeRun(d.RunID)
	}
	return got, err
}

func joinActions(as []store.Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
