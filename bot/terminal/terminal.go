// Package terminal is the front for an operator at a terminal: it runs a
// procedure or attaches to a run, prints each step as it starts and ends
// with its duration and progress, asks at every checkpoint, and on an
// interruption (Ctrl-C, end of input) aborts the run safely or leaves it
// for nocobot attach. Shell is the interactive prompt of the command
// language.
package terminal

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// Dispatcher is what the terminal front asks of *bot.Dispatcher: every
// command, answer and attachment is access-checked and audited like
// every front's.
type Dispatcher interface {
	Command(ctx context.Context, who bot.Caller, line string) bot.Reply
	CommandWords(ctx context.Context, who bot.Caller, words []string, said string) bot.Reply
	Decide(ctx context.Context, who bot.Caller, a bot.Answer) bot.Reply
	Attach(ctx context.Context, who bot.Caller, id, said string) bot.Reply
	Refuse(ctx context.Context, who bot.Caller, said, msg string) bot.Reply
}

// Engine is where the terminal front follows runs (*procedures.Engine):
// events of the runs this process drives, the store for the others.
type Engine interface {
	Subscribe() *events.Subscription
	RunByID(ctx context.Context, id string) (store.Run, error)
	Decisions(ctx context.Context, runID string) ([]store.Decision, error)
	UnfinishedRuns(ctx context.Context) ([]store.Run, error)
	// Attach drives a run no live process drives; Leave stops driving
	// one here and releases it at once.
	Attach(ctx context.Context, id string) (store.Run, bool, error)
	Leave(ctx context.Context, id string) error
}

// Choice is what happens to a run when its follower is interrupted.
type Choice string

const (
	Abort Choice = "abort" // abort the run safely and follow it to its end
	Leave Choice = "leave" // leave it as it is, for nocobot attach
	Keep  Choice = "keep"  // go on following
)

// ParseChoice reads --on-interrupt's value.
func ParseChoice(s string) (Choice, error) {
	switch Choice(s) {
	case Abort, Leave:
		return Choice(s), nil
	}
	return "", fmt.Errorf("--on-interrupt %q: expected abort or leave", s)
}

// Options configure a front.
type Options struct {
	// Interactive: a person is at the terminal, so an interruption asks.
	Interactive bool
	// OnInterrupt is what an interruption does without a person.
	OnInterrupt Choice
	// Interrupts delivers Ctrl-C.
	Interrupts <-chan struct{}
	// NoLeave: a run cannot be left for later here (the demo's store
	// ends with its process): an interruption offers abort or keep
	// following, and without a person it aborts.
	NoLeave bool
	// Prefix spells the commands in hints, "nocobot".
	Prefix string
	// ProgressEvery is the least time between two progress lines of a
	// step when the output is not a terminal (at a terminal a live line
	// shows the latest); a newer message replaces one that waits.
	// Default 3 s.
	ProgressEvery time.Duration
	// PollEvery is how often a run another process drives is read from
	// the store. Default 250 ms.
	PollEvery time.Duration
}

// Front prints runs to out and reads answers from lines.
type Front struct {
	disp  Dispatcher
	eng   Engine
	lines <-chan Line
	out   io.Writer // scr: lasting lines erase the live area first
	scr   *screen
	who   bot.Caller
	opts  Options
	now   func() time.Time
}

// New makes a terminal front for the operator who.
func New(disp Dispatcher, eng Engine, lines <-chan Line, out io.Writer, who bot.Caller, opts Options) *Front {
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 3 * time.Second
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = 250 * time.Millisecond
	}
	if opts.OnInterrupt == "" {
		opts.OnInterrupt = Leave
	}
	if opts.NoLeave {
		opts.OnInterrupt = Abort
	}
	if opts.Prefix == "" {
		opts.Prefix = "nocobot"
	}
	scr := newScreen(out)
	return &Front{disp: disp, eng: eng, lines: lines, out: scr, scr: scr, who: who, opts: opts, now: time.Now}
}

// End is how following a run ended.
type End struct {
	Run store.Run
	// Left: the run was left unfinished (interrupted, or the input
	// ended without a person); nocobot attach continues it.
	Left bool
	// Interrupted: Ctrl-C or the end of input aborted the run.
	Interrupted bool
}

// Start starts the procedure its words name (said: as the operator
// typed it) and follows it like Follow.
func (f *Front) Start(ctx context.Context, words []string, said string) (End, error) {
	sub := f.eng.Subscribe()
	defer sub.Close()
	r := f.disp.CommandWords(ctx, f.who, words, said)
	if !r.Started {
		return End{}, ReplyError{r}
	}
	return f.followDriven(ctx, sub, r.RunID, true)
}

// Attach follows run id to its end, answering its checkpoints here, and
// drives it when no live process does (its process was killed, or left
// it). Access is checked and the attachment audited first.
func (f *Front) Attach(ctx context.Context, id, said string) (End, error) {
	rep := f.disp.Attach(ctx, f.who, id, said)
	if rep.Outcome.Kind != bot.OK {
		return End{}, ReplyError{rep}
	}
	sub := f.eng.Subscribe()
	defer sub.Close()
	run, driving, err := f.eng.Attach(ctx, id)
	if err != nil {
		return End{}, err
	}
	switch {
	case run.State.Finished():
		fmt.Fprintf(f.out, "Run %s has finished.\n", id)
	case driving:
		fmt.Fprintf(f.out, "Attached to run %s: no other process drives it, so this one does now.\n", id)
	default:
		fmt.Fprintf(f.out, "Attached to run %s, which another nocobot process drives; answers given here reach it.\n", id)
	}
	return f.followDriven(ctx, sub, id, driving)
}

// followDriven follows a run and, when this process drives it and it is
// left, releases it at once for nocobot attach.
func (f *Front) followDriven(ctx context.Context, sub *events.Subscription, id string, driving bool) (End, error) {
	w, end, err := f.follow(ctx, sub, id, driving)
	if end.Left && w.driving && !f.opts.NoLeave {
		if lerr := f.eng.Leave(context.WithoutCancel(ctx), id); lerr != nil {
			return end, fmt.Errorf("run %s: release it for nocobot attach: %w", id, lerr)
		}
	}
	return end, err
}

// ReplyError is a dispatcher's refusal or failure as an error.
type ReplyError struct{ R bot.Reply }

func (e ReplyError) Error() string { return Clean(e.R.Plain()) }
func (e ReplyError) Unwrap() error { return e.R.Err }
