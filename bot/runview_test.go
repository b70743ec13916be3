package bot_test

import (
	"strings"
	"testing"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// A view built from a run's events holds what every front shows: the
// failed step's error beside its question, who answered which question,
// and a question the run's end closed unanswered.
func TestRunViewFromEvents(t *testing.T) {
	steps := []store.Step{{Name: "backup", Status: store.StepDone}, {Name: "pull", Status: store.StepFailed, Detail: "no such image"}}
	r := store.Run{ID: "r1", State: store.StateWaiting, Steps: steps}
	v := bot.NewRunView()
	apply := func(ev events.Event) {
		v.Show(ev.Run)
		v.Apply(ev)
	}
	r.Checkpoint = &store.Checkpoint{ID: "c1", Kind: "failure", Step: 1, Question: "Pull failed: no such image. Retry?"}
	apply(events.Event{Kind: events.Checkpoint, Run: r})
	if q := v.Open(); q == nil || q.Detail != "no such image" {
		t.Fatalf("open question: %+v", q)
	}
	apply(events.Event{Kind: events.Decided, Run: r, Decision: &store.Decision{Checkpoint: "c1", By: "U1", Action: store.ActionRetry}})
	apply(events.Event{Kind: events.Decided, Run: r, Decision: &store.Decision{Checkpoint: "c1", By: "U2", Action: store.ActionAbort}})
	if d := v.Questions["c1"].Decision; d == nil || d.By != "U1" {
		t.Fatalf("the first answer stands: %+v", d)
	}
	r.Checkpoint = &store.Checkpoint{ID: "c2", Kind: "verify", Step: -1}
	apply(events.Event{Kind: events.Checkpoint, Run: r})
	r.Checkpoint, r.State = nil, store.StateAborted
	apply(events.Event{Kind: events.RunFinished, Run: r})
	if !v.Finished || v.Open() != nil {
		t.Fatalf("finished %v, open %+v", v.Finished, v.Open())
	}
	if q := v.Questions["c2"]; q.Open() || q.Closed != "Closed: the run "+bot.StateWords(store.StateAborted)+"." {
		t.Fatalf("unanswered question at the end: %+v", q)
	}
	if ids := v.QuestionIDs(); len(ids) != 2 || ids[0] != "c1" {
		t.Fatalf("questions: %v", ids)
	}
}

// Steps are numbered as plan prints them, the roll back's apart.
func TestStepNumber(t *testing.T) {
	steps := []store.Step{{}, {}, {}, {Rollback: true}, {Rollback: true}}
	var got []string
	for i := range steps {
		got = append(got, bot.StepNumber(steps, i))
	}
	if want := "1/3 2/3 3/3 R1/2 R2/2"; strings.Join(got, " ") != want || bot.ForwardSteps(steps) != 3 {
		t.Fatalf("%s, forward %d; want %s, 3", strings.Join(got, " "), bot.ForwardSteps(steps), want)
	}
}
