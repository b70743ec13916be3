package terminal

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/store"
)

// interrupted decides what an interruption (Ctrl-C, end of input) does:
// at a terminal it asks; without a person it follows Options.OnInterrupt.
// A second interruption while aborting leaves (where a run can be left).
func (w *follower) interrupted(ctx context.Context, what string, lines <-chan Line) Choice {
	f := w.f
	w.prog.flush(f.now())
	if w.aborting {
		if f.opts.NoLeave {
			fmt.Fprintf(f.out, "\n%s again: run %s aborts as soon as its current step ends; waiting for it.\n", what, w.id)
			return Keep
		}
		fmt.Fprintf(f.out, "\n%s again while run %s aborts.\n", what, w.id)
		return Leave
	}
	if !f.opts.Interactive || lines == nil {
		if f.opts.NoLeave {
			fmt.Fprintf(f.out, "\n%s: run %s aborts safely, as no one is here to answer.\n", what, w.id)
			return Abort
		}
		fmt.Fprintf(f.out, "\n%s: run %s %ss (--on-interrupt %s).\n", what, w.id, f.opts.OnInterrupt, f.opts.OnInterrupt)
		return f.opts.OnInterrupt
	}
	w.prompting = true
	defer func() { w.prompting = false }()
	p := f.opts.Prefix
	if f.opts.NoLeave {
		fmt.Fprintf(f.out, "\n%s. Run %s is %s.\n  a) abort it safely (the current step ends, then the run stops and says where the cluster stands)\n  k) keep following\nChoose a or k: ",
			what, w.id, Clean(bot.RunStatus(w.last)))
	} else {
		fmt.Fprintf(f.out, "\n%s. Run %s is %s.\n  a) abort it safely (the current step ends, then the run stops and says where the cluster stands)\n  l) leave it as it is, to continue later with %s attach %s\n  k) keep following\nChoose a, l or k: ",
			what, w.id, Clean(bot.RunStatus(w.last)), p, w.id)
	}
	for {
		select {
		case <-ctx.Done():
			return Leave
		case <-f.opts.Interrupts:
			return w.leaveOr()
		case l, ok := <-lines:
			if !ok || l.EOF {
				return w.leaveOr()
			}
			switch strings.ToLower(l.Text) {
			case "a", "abort":
				return Abort
			case "l", "leave":
				if f.opts.NoLeave {
					break
				}
				return Leave
			case "k", "keep", "":
				if w.asked != nil {
					w.ask(*w.asked)
				}
				return Keep
			}
			if f.opts.NoLeave {
				fmt.Fprint(f.out, "Choose a (abort) or k (keep following): ")
			} else {
				fmt.Fprint(f.out, "Choose a (abort), l (leave) or k (keep following): ")
			}
		}
	}
}

// leaveOr is what an interruption of the prompt does: leave, or abort
// where a run cannot be left.
func (w *follower) leaveOr() Choice {
	if w.f.opts.NoLeave {
		return Abort
	}
	return Leave
}

// abort asks the run to abort through the dispatcher (audited): the open
// question's Abort when it offers one, else a cancel.
func (w *follower) abort(ctx context.Context) {
	f := w.f
	var rep bot.Reply
	if cp := w.asked; cp != nil && slices.Contains(cp.Options, store.ActionAbort) {
		rep = f.disp.Decide(ctx, f.who, bot.Answer{RunID: w.id, Checkpoint: cp.ID, Action: store.ActionAbort,
			Said: fmt.Sprintf("interrupt: abort run %s checkpoint %s", w.id, cp.ID)})
	} else {
		rep = f.disp.CommandWords(ctx, f.who, []string{"cancel", w.id}, "interrupt: cancel run "+w.id)
	}
	if rep.Outcome.Kind != bot.OK {
		fmt.Fprintf(f.out, "Could not abort run %s: %s\n", w.id, Clean(rep.Plain()))
		return
	}
	w.aborting = true
	fmt.Fprintf(f.out, "Aborting run %s: the current step ends safely, then the run stops.\n", w.id)
}
