package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Answer is a person's decision on a run's checkpoint (a button, a
// prompt's answer).
type Answer struct {
	RunID string
	// Checkpoint is the question answered; "" answers the one open now.
	Checkpoint string
	Action     store.Action
	// Said is the decision as the audit log shows it, e.g.
	// "button continue run r1130-ab12 checkpoint verify-6-1".
	Said string
}

// actionLabels name the actions for people.
var actionLabels = map[store.Action]string{
	store.ActionContinue: "Continue", store.ActionRollback: "Roll back",
	store.ActionAbort: "Abort", store.ActionRetry: "Retry",
}

// ActionLabel names an action for people: "Roll back".
func ActionLabel(a store.Action) string {
	if l, ok := actionLabels[a]; ok {
		return l
	}
	return string(a)
}

// Decide records a decision on a checkpoint after the access rules and
// the four-eyes rule allow it. Every call writes one audit entry.
func (d *Dispatcher) Decide(ctx context.Context, who Caller, a Answer) Reply {
	r := d.decide(ctx, who, a)
	r.RunID = a.RunID
	return d.record(ctx, who, a.Said, r)
}

func (d *Dispatcher) decide(ctx context.Context, who Caller, a Answer) Reply {
	if !d.inObeyedChannel(who) {
		return refused(T("I don't take decisions in this channel."), nil)
	}
	// The engine reads the run once and asks rules for the access rules
	// and the four-eyes rule; the store decides once in any case.
	rules := &decideRules{d: d, ctx: ctx, who: who}
	defer rules.release()
	got, err := d.eng.DecideAs(ctx, store.Decision{
		RunID: a.RunID, Checkpoint: a.Checkpoint, Action: a.Action,
		By: who.User, ByName: who.Name, Via: who.Via, At: d.now(),
	}, rules)
	var refusal ruleRefusal
	if errors.As(err, &refusal) {
		return refusal.r
	}
	var de *procedures.DecisionError
	if errors.As(err, &de) {
		run := de.Run
		switch de.Why {
		case procedures.DecisionNoRun:
			return refused(T(fmt.Sprintf("There is no run %s.", procedures.Typed(a.RunID))), err)
		case procedures.DecisionFinished:
			return refused(T(fmt.Sprintf("Run %s has already finished (%s); nothing to decide.", a.RunID, StateWords(run.State))), nil)
		case procedures.DecisionNotWaiting:
			return refused(T("Run ", a.RunID, " asks nothing now (it is ", StateWords(run.State), "). To stop it: ", Code(who.Prefix+" cancel "+a.RunID), "."), nil)
		case procedures.DecisionClosed:
			a.Checkpoint = cmp.Or(a.Checkpoint, rules.checkpoint)
			return d.alreadyDecided(ctx, a)
		case procedures.DecisionNotOption:
			r := refused(T(fmt.Sprintf("%s is not an option here: choose %s.", ActionLabel(a.Action), choices(run.Checkpoint))), nil)
			if run.Checkpoint != nil {
				r.Options = run.Checkpoint.Options
			}
			return r
		}
	}
	if err != nil {
		return failed("Could not record your decision", err)
	}
	return Reply{Outcome: ok(string(a.Action)), Cluster: rules.cluster, Decision: &got}
}

// ruleRefusal is the dispatcher's own refusal of a decision, passed
// through the engine as an error.
type ruleRefusal struct{ r Reply }

func (e ruleRefusal) Error() string { return e.r.Outcome.Why }

// decideRules are the dispatcher's rules on one decision: the decide
// permission on the run's cluster, the four-eyes rule, and one decision
// at a time per checkpoint.
type decideRules struct {
	d   *Dispatcher
	ctx context.Context
	who Caller
	// cluster and checkpoint are the run's, as the engine read it.
	cluster, checkpoint string
	held                string // the deciding key this decision holds
}

func (dr *decideRules) MayDecide(run store.Run) error {
	dr.cluster = run.Cluster
	if !dr.d.allowed(dr.ctx, dr.who, run.Cluster, permDecide) {
		return ruleRefusal{refused(dr.d.denied(dr.who, fmt.Sprintf("Sorry, you are not allowed to decide checkpoints on %s.", run.Cluster)), nil)}
	}
	return nil
}

func (dr *decideRules) MayChoose(run store.Run, cp store.Checkpoint, a store.Action) error {
	d := dr.d
	dr.checkpoint = cp.ID
	// Four-eyes is about approving the result: a verify checkpoint. The
	// person who opened a manual window closes it with Done themselves.
	if a == store.ActionContinue && cp.Kind == "verify" && d.fourEyesRefuses(dr.who, run.Cluster, procedures.Responsible(run)) {
		return ruleRefusal{refused(T("Four-eyes rule: you requested this run, so someone else must approve it. You may still roll back or abort."), nil)}
	}
	// Two quick decisions: the second waits for nothing and is told so;
	// the store decides once in any case.
	key := run.ID + "|" + cp.ID
	d.mu.Lock()
	busy := d.deciding[key]
	d.deciding[key] = true
	d.mu.Unlock()
	if busy {
		return ruleRefusal{refused(T("This checkpoint is already being decided (another click came first)."), store.ErrAlreadyDecided)}
	}
	dr.held = key
	return nil
}

// release lets the next decision on the checkpoint through.
func (dr *decideRules) release() {
	if dr.held == "" {
		return
	}
	dr.d.mu.Lock()
	delete(dr.d.deciding, dr.held)
	dr.d.mu.Unlock()
}

// alreadyDecided refuses a decision on a checkpoint that is closed,
// naming who decided it when the store says.
func (d *Dispatcher) alreadyDecided(ctx context.Context, a Answer) Reply {
	ds, err := d.eng.Decisions(ctx, a.RunID)
	if err == nil {
		for _, x := range ds {
			if x.Checkpoint == a.Checkpoint {
				r := refused(T("This checkpoint was already decided: ", Person(x.By), " chose ", ActionLabel(x.Action), " at ", At(x.At), "."), store.ErrAlreadyDecided)
				r.Decision = &x
				return r
			}
		}
	}
	return refused(T("This checkpoint is no longer open."), store.ErrAlreadyDecided)
}

// WindowAnswer skips a maintenance window's start, or approves it.
type WindowAnswer struct {
	ID      string
	Start   time.Time
	Approve bool
	Said    string // as the audit log shows it
}

// DecideWindow skips or approves a window's start after the access
// rules allow it. Every call writes one audit entry.
func (d *Dispatcher) DecideWindow(ctx context.Context, who Caller, a WindowAnswer) Reply {
	return d.record(ctx, who, a.Said, d.decideWindow(ctx, who, a))
}

func (d *Dispatcher) decideWindow(ctx context.Context, who Caller, a WindowAnswer) Reply {
	verb, past := "skip", "Skipped"
	if a.Approve {
		verb, past = "start", "Started"
	}
	if d.sched == nil {
		return refused(T("Scheduling is off: this bot runs without the maintenance window scheduler."), nil)
	}
	if !d.inObeyedChannel(who) {
		return refused(T("I don't take decisions in this channel."), nil)
	}
	w, err := d.eng.Window(ctx, a.ID)
	if err != nil {
		return refused(T(fmt.Sprintf("There is no window %s any more.", procedures.Typed(a.ID))), err)
	}
	if !d.allowed(ctx, who, w.Cluster, permRun) {
		return refused(d.denied(who, fmt.Sprintf("Sorry, you are not allowed to run procedures on %s.", w.Cluster)), nil)
	}
	if a.Approve {
		err = d.sched.Approve(ctx, a.ID, a.Start, who.User)
	} else {
		err = d.sched.Skip(ctx, a.ID, a.Start, who.User)
	}
	if err != nil {
		return refused(T(fmt.Sprintf("Could not %s window %s: %v", verb, a.ID, err)), err)
	}
	return Reply{Outcome: ok(verb), Cluster: w.Cluster, Window: &w,
		Text: T(past, " by ", Person(who.User), " at ", At(d.now()))}
}
