package bot

import (
	"fmt"
	"slices"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// RunView is what a run looks like now, for any front to render: its
// latest state, when each step last reported progress, every question it
// asked with the answer given, and whether it has finished. A front
// feeds it what it sees — snapshots (Show), the engine's events (Apply),
// decisions read from the store (Decide) — and only renders it: a Slack
// thread, a terminal's lines.
type RunView struct {
	Run store.Run
	// Shown: a snapshot has been taken (Run is set).
	Shown bool
	// ProgressAt is when each step (by index) last reported progress.
	ProgressAt map[int]time.Time
	// Questions are the checkpoints the run asked, by id.
	Questions map[string]*Question
	// Finished: the run has ended (its RunFinished event was seen).
	Finished bool
}

// Question is one checkpoint as people see it: asked, then answered or
// closed when the run ended without an answer.
type Question struct {
	Checkpoint store.Checkpoint
	// Detail is the failed step's error when the question was asked: the
	// step's own line shows it, the question need not repeat it.
	Detail   string
	Decision *store.Decision
	// Closed says why the question closed without a decision.
	Closed string
}

// Open reports whether the question still waits for an answer.
func (q *Question) Open() bool { return q.Decision == nil && q.Closed == "" }

// NewRunView is an empty view, before the first snapshot.
func NewRunView() *RunView {
	return &RunView{ProgressAt: map[int]time.Time{}, Questions: map[string]*Question{}}
}

// Show takes the run's latest snapshot; it reports whether it is the
// first one (a front picking a run up mid-way shows what has happened).
func (v *RunView) Show(r store.Run) (first bool) {
	first = !v.Shown
	v.Run, v.Shown = r, true
	return first
}

// Ask records checkpoint cp as asked, unless it is known already, and
// returns it.
func (v *RunView) Ask(cp store.Checkpoint) *Question {
	if q, ok := v.Questions[cp.ID]; ok {
		return q
	}
	q := &Question{Checkpoint: cp}
	if cp.Step >= 0 && cp.Step < len(v.Run.Steps) {
		q.Detail = v.Run.Steps[cp.Step].Detail
	}
	v.Questions[cp.ID] = q
	return q
}

// Decide records d as the answer to its question, when the question is
// known and has none yet; it reports whether it did.
func (v *RunView) Decide(d store.Decision) bool {
	q, ok := v.Questions[d.Checkpoint]
	if !ok || q.Decision != nil {
		return false
	}
	q.Decision = &d
	return true
}

// Apply records one of the run's events (after Show(ev.Run)).
func (v *RunView) Apply(ev events.Event) {
	switch ev.Kind {
	case events.StepProgress:
		if ev.Step >= 0 {
			v.ProgressAt[ev.Step] = ev.At
		}
	case events.Checkpoint:
		if cp := ev.Run.Checkpoint; cp != nil {
			v.Ask(*cp)
		}
	case events.Decided:
		if d := ev.Decision; d != nil {
			v.Decide(*d)
		}
	case events.RunFinished:
		v.Finished = true
		for _, q := range v.Questions {
			if q.Decision != nil {
				continue
			}
			if d := ev.Decision; d != nil && d.Checkpoint == q.Checkpoint.ID {
				v.Decide(*d)
			} else {
				q.Closed = "Closed: the run " + StateWords(ev.Run.State) + "."
			}
		}
	}
}

// Open is the question waiting for an answer now, if any.
func (v *RunView) Open() *Question {
	if cp := v.Run.Checkpoint; cp != nil && !v.Run.State.Finished() {
		if q, ok := v.Questions[cp.ID]; ok && q.Open() {
			return q
		}
	}
	return nil
}

// QuestionIDs are the questions' ids in order.
func (v *RunView) QuestionIDs() []string {
	ids := make([]string, 0, len(v.Questions))
	for id := range v.Questions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// StepNumber is step i's number as plan prints it: 3/10 for the third of
// the procedure's ten steps, R1/3 for the first of its roll back's three.
func StepNumber(steps []store.Step, i int) string {
	n, k := 0, 0
	for j, s := range steps {
		if s.Rollback == steps[i].Rollback {
			n++
			if j <= i {
				k = n
			}
		}
	}
	if steps[i].Rollback {
		return fmt.Sprintf("R%d/%d", k, n)
	}
	return fmt.Sprintf("%d/%d", k, n)
}

// ForwardSteps counts the procedure's steps, without its roll back's.
func ForwardSteps(steps []store.Step) int {
	n := 0
	for _, s := range steps {
		if !s.Rollback {
			n++
		}
	}
	return n
}

// Deciders are who may answer a run's question, from the access rules
// of its cluster.
type Deciders struct {
	Users, Groups []string
	// NotRequester: under the four-eyes rule the run's requester may not
	// continue; it names them (empty: anyone listed may).
	NotRequester string
}

// Nobody reports whether the rules name nobody.
func (d Deciders) Nobody() bool { return len(d.Users) == 0 && len(d.Groups) == 0 }

// Deciders says who may answer question cp of run r.
func (d *Dispatcher) Deciders(r store.Run, cp store.Checkpoint) Deciders {
	acc := d.rules(r.Cluster)
	out := Deciders{Users: acc.Decide.Users, Groups: acc.Decide.Groups}
	if acc.FourEyes && r.Requester != "" && slices.Contains(cp.Options, store.ActionContinue) {
		out.NotRequester = r.Requester
	}
	return out
}
