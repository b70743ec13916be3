// Package terminal is the front for an operator at a terminal when Slack
// is down: it runs one procedure, prints each step as it starts and ends
// with its duration and progress, and asks at every checkpoint.
package terminal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Dispatcher is what the terminal front asks of *bot.Dispatcher: it
// starts the run and records the answers, access-checked and audited
// like every front's.
type Dispatcher interface {
	Do(ctx context.Context, who bot.Caller, cmd bot.Command, said string) bot.Reply
	Decide(ctx context.Context, who bot.Caller, a bot.Answer) bot.Reply
}

// Events is where the terminal front follows runs (*procedures.Engine).
type Events interface {
	Subscribe() *procedures.Subscription
}

// Front prints a run's events to out and reads answers from in.
type Front struct {
	disp   Dispatcher
	events Events
	in     *bufio.Scanner
	out    io.Writer
	who    bot.Caller // who answers, e.g. "terminal:alice"
	// ProgressEvery is the least time between two progress lines of one
	// step (an unchanged message is not repeated).
	ProgressEvery time.Duration
	now           func() time.Time
}

// New makes a terminal front for the operator who.
func New(disp Dispatcher, events Events, in io.Reader, out io.Writer, who bot.Caller) *Front {
	return &Front{disp: disp, events: events, in: bufio.NewScanner(in), out: out, who: who, ProgressEvery: 2 * time.Second, now: time.Now}
}

// Run starts the procedure cmd (said: as the operator typed it) and
// follows it to its end, answering checkpoints from the terminal. It
// returns the finished run.
func (f *Front) Run(ctx context.Context, cmd bot.Command, said string) (store.Run, error) {
	sub := f.events.Subscribe()
	defer sub.Close()
	r := f.disp.Do(ctx, f.who, cmd, said)
	if !r.Started {
		return store.Run{}, replyError{r}
	}
	run := store.Run{ID: r.RunID}
	answers := make(chan string)
	go f.readLines(ctx, answers)
	lastProgress := map[int]time.Time{}
	lastMsg := map[int]string{}
	for {
		select {
		case <-ctx.Done():
			return run, fmt.Errorf("stopped following run %s (it is recorded and resumes with the next nocobot on this store): %w", run.ID, ctx.Err())
		case ev, ok := <-sub.C:
			if !ok {
				return run, errors.New("the engine stopped")
			}
			if ev.Run.ID != run.ID {
				continue
			}
			run = ev.Run
			switch ev.Kind {
			case procedures.EventRunStarted:
				fmt.Fprintf(f.out, "Run %s: %s (%d steps)\n", run.ID, procedures.Title(run), len(run.Steps))
			case procedures.EventStepProgress:
				if ev.Message == lastMsg[ev.Step] || f.now().Sub(lastProgress[ev.Step]) < f.ProgressEvery {
					continue
				}
				lastProgress[ev.Step], lastMsg[ev.Step] = f.now(), ev.Message
				fmt.Fprintf(f.out, "      … %s (%s)\n", ev.Message, f.since(ev.Run.Steps[ev.Step].Started))
			case procedures.EventCheckpoint:
				if err := f.ask(ctx, ev.Run, answers); err != nil {
					return run, err
				}
			default:
				f.print(ev)
			}
			if ev.Kind == procedures.EventRunFinished {
				return run, nil
			}
		}
	}
}

// replyError is a dispatcher's refusal or failure as an error.
type replyError struct{ r bot.Reply }

func (e replyError) Error() string { return e.r.Plain() }
func (e replyError) Unwrap() error { return e.r.Err }

func (f *Front) since(t time.Time) string {
	if t.IsZero() {
		return "0s"
	}
	return format.Elapsed(f.now().Sub(t))
}

func (f *Front) print(ev procedures.Event) {
	step := func() (store.Step, string) {
		s := ev.Run.Steps[ev.Step]
		return s, fmt.Sprintf("%d/%d", ev.Step+1, len(ev.Run.Steps))
	}
	switch ev.Kind {
	case procedures.EventStepStarted:
		s, n := step()
		attempt := ""
		if s.Attempt > 1 {
			attempt = fmt.Sprintf(" (attempt %d)", s.Attempt)
		}
		fmt.Fprintf(f.out, "[%s] ▶ %s %s%s\n", ev.At.Format("15:04:05"), n, s.Title, attempt)
	case procedures.EventStepDone:
		s, n := step()
		fmt.Fprintf(f.out, "[%s] ✔ %s done in %s: %s\n", ev.At.Format("15:04:05"), n, format.Duration(s.Ended.Sub(s.Started)), s.Detail)
	case procedures.EventStepFailed:
		s, n := step()
		fmt.Fprintf(f.out, "[%s] ✖ %s %s failed after %s: %s\n", ev.At.Format("15:04:05"), n, s.Title, format.Duration(s.Ended.Sub(s.Started)), s.Detail)
	case procedures.EventStepSkipped:
		_, n := step()
		fmt.Fprintf(f.out, "[%s] – %s %s\n", ev.At.Format("15:04:05"), n, ev.Message)
	case procedures.EventRunFinished:
		fmt.Fprintf(f.out, "\n%s\n", procedures.Summary(ev.Run))
	case procedures.EventDecided, procedures.EventRollingBack, procedures.EventRunResumed,
		procedures.EventReminder, procedures.EventStoreDown, procedures.EventStoreBack:
		fmt.Fprintf(f.out, "[%s] %s\n", ev.At.Format("15:04:05"), ev.Message)
	}
}

func (f *Front) readLines(ctx context.Context, out chan<- string) {
	defer close(out)
	for f.in.Scan() {
		select {
		case out <- strings.TrimSpace(f.in.Text()):
		case <-ctx.Done():
			return
		}
	}
}

// ask prints the question and records the operator's answer. Only the
// options the checkpoint offers are accepted.
func (f *Front) ask(ctx context.Context, r store.Run, answers <-chan string) error {
	cp := r.Checkpoint
	fmt.Fprintf(f.out, "\n? %s\n", cp.Question)
	if cp.URL != "" {
		fmt.Fprintf(f.out, "  Check: %s\n", cp.URL)
	}
	opts := make([]string, len(cp.Options))
	for i, o := range cp.Options {
		opts[i] = string(o)
	}
	for {
		fmt.Fprintf(f.out, "  Answer %s: ", strings.Join(opts, " / "))
		var line string
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-answers:
			if !ok {
				return fmt.Errorf("no answer (the input ended): run %s waits at its checkpoint; answer it in Slack or with nocobot decide %s %s (the next nocobot serve on this store acts on it)", r.ID, r.ID, strings.Join(opts, "|"))
			}
			line = strings.ToLower(l)
		}
		action := store.Action(strings.ReplaceAll(line, " ", ""))
		if action == "rollback" || action == "roll-back" {
			action = store.ActionRollback
		}
		valid := false
		for _, o := range cp.Options {
			valid = valid || o == action
		}
		if !valid {
			fmt.Fprintf(f.out, "  %q is not an option here.\n", line)
			continue
		}
		said := fmt.Sprintf("answer %s run %s checkpoint %s", action, r.ID, cp.ID)
		rep := f.disp.Decide(ctx, f.who, bot.Answer{RunID: r.ID, Checkpoint: cp.ID, Action: action, Said: said})
		switch {
		case rep.Outcome.Kind == bot.OK:
			return nil
		case errors.Is(rep.Err, store.ErrAlreadyDecided):
			fmt.Fprintln(f.out, "  Someone else decided first; following their decision.")
			return nil
		case rep.Outcome.Kind == bot.Refused:
			fmt.Fprintf(f.out, "  %s\n", rep.Plain())
			continue
		}
		return replyError{rep}
	}
}
