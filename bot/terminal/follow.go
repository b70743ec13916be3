package terminal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// follower renders one run from its snapshots: events when this process
// drives it, the store when another does. It prints what changed since
// the last snapshot, so both sources give the same lines.
type follower struct {
	f        *Front
	id       string
	last     store.Run
	seen     bool
	prog     *progress
	progSeen map[int]string
	asked    *store.Checkpoint // the open question shown here
	aborting bool
	// driving: this process drives the run; when not, it takes the run
	// over once the lease of the process that drives it lapses.
	driving bool
	// inputEnded: no more answers can come (the input ended without a person).
	inputEnded bool
	// decided: the open question has an answer recorded already (given
	// before this process attached): the run applies it, and no input is
	// read, nor its end acted on, until the question closes.
	decided bool
}

func (f *Front) follow(ctx context.Context, sub *procedures.Subscription, id string, driving bool) (*follower, End, error) {
	w := &follower{f: f, id: id, prog: &progress{out: f.out, every: f.opts.ProgressEvery}, progSeen: map[int]string{}, driving: driving}
	end, err := w.run(ctx, sub)
	return w, end, err
}

func (w *follower) run(ctx context.Context, sub *procedures.Subscription) (End, error) {
	f, id := w.f, w.id
	r, err := f.eng.RunByID(ctx, id)
	if err != nil {
		return End{}, err
	}
	w.update(ctx, r)
	tick := time.NewTicker(f.opts.PollEvery)
	defer tick.Stop()
	events, lines := sub.C, f.lines
	for !w.last.State.Finished() {
		choice := Keep
		in := lines
		if w.decided {
			in = nil
		}
		select {
		case <-ctx.Done():
			w.leave()
			return End{Run: w.last, Left: true}, nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Run.ID != id {
				continue
			}
			switch ev.Kind {
			case procedures.EventRunResumed, procedures.EventReminder, procedures.EventStoreDown, procedures.EventStoreBack:
				w.prog.flush(f.now())
				fmt.Fprintf(f.out, "[%s] %s\n", ev.At.Format("15:04:05"), Clean(ev.Message))
			}
			w.update(ctx, ev.Run)
		case <-tick.C:
			if r, err := f.eng.RunByID(ctx, id); err == nil {
				w.update(ctx, r)
			}
			w.prog.due(f.now())
			w.takeOver(ctx)
		case l, ok := <-in:
			switch {
			case !ok || (l.EOF && !f.opts.Interactive):
				// Without a person, the end of input matters once a
				// question needs an answer: a run that asks nothing
				// goes on to its end.
				lines, w.inputEnded = nil, true
			case l.EOF:
				choice = w.interrupted(ctx, "The input ended", lines)
			default:
				w.answer(ctx, l.Text)
			}
		case <-f.opts.Interrupts:
			choice = w.interrupted(ctx, "Interrupted", lines)
		}
		if choice == Keep && w.inputEnded && w.asked != nil && !w.aborting && !w.decided {
			choice = w.interrupted(ctx, "The input ended", nil)
		}
		switch choice {
		case Leave:
			w.leave()
			return End{Run: w.last, Left: true}, nil
		case Abort:
			w.abort(ctx)
		}
	}
	w.finish()
	return End{Run: w.last}, nil
}

// takeOver drives the run here once no live process does.
func (w *follower) takeOver(ctx context.Context) {
	if w.driving || w.last.State.Finished() || time.Now().Before(w.last.LeaseUntil) {
		return
	}
	if _, driving, err := w.f.eng.Attach(ctx, w.id); err == nil && driving {
		w.driving = true
		w.prog.flush(w.f.now())
		fmt.Fprintf(w.f.out, "[%s] The process that drove run %s stopped; this one drives it now.\n", w.f.now().Format("15:04:05"), w.id)
	}
}

func (w *follower) since(s store.Step) string {
	if s.Started.IsZero() {
		return "0s"
	}
	return format.Elapsed(w.f.now().Sub(s.Started))
}

// update prints what changed between the last snapshot and r.
func (w *follower) update(ctx context.Context, r store.Run) {
	f := w.f
	if w.seen && r.Updated.Before(w.last.Updated) {
		return // an older snapshot than the one shown
	}
	if !w.seen {
		w.seen = true
		fmt.Fprintf(f.out, "Run %s: %s (%d steps) — %s\n", r.ID, Clean(procedures.Title(r)), len(r.Steps), Clean(bot.RunStatus(r)))
	}
	if w.asked != nil && (r.Checkpoint == nil || r.Checkpoint.ID != w.asked.ID) {
		w.closed(ctx, *w.asked)
		w.asked, w.decided = nil, false
	}
	for i, s := range r.Steps {
		var prev store.Step
		if i < len(w.last.Steps) {
			prev = w.last.Steps[i]
		}
		if s.Status != prev.Status || s.Attempt != prev.Attempt {
			w.printStep(i, len(r.Steps), s)
		}
		if s.Status == store.StepRunning && s.Progress != "" && s.Progress != w.progSeen[i] {
			w.progSeen[i] = s.Progress
			w.prog.add(f.now(), i, s.Progress, w.since(s))
		}
	}
	w.last = r
	if r.Checkpoint != nil && w.asked == nil && !r.State.Finished() {
		cp := *r.Checkpoint
		w.asked = &cp
		if d, ok := w.recorded(ctx, cp); ok {
			w.decided = true
			w.prog.flush(f.now())
			fmt.Fprintf(f.out, "\n? Run %s asks: %s\n  Already answered: %s, chosen by %s (%s) at %s; the run goes on with it.\n",
				w.id, Clean(cp.Question), bot.ActionLabel(d.Action), Clean(deciderName(d)), d.Via, d.At.Local().Format("15:04:05"))
			return
		}
		w.ask(cp)
	}
}

// recorded is the decision already recorded for question cp, as the run
// applies it: an answer to cp, or an abort outside any question.
func (w *follower) recorded(ctx context.Context, cp store.Checkpoint) (store.Decision, bool) {
	ds, err := w.f.eng.Decisions(ctx, w.id)
	if err != nil {
		return store.Decision{}, false
	}
	for _, d := range ds {
		if d.Checkpoint == cp.ID || (d.Checkpoint == "" && d.Action == store.ActionAbort) {
			return d, true
		}
	}
	return store.Decision{}, false
}

func deciderName(d store.Decision) string {
	if d.ByName != "" {
		return d.ByName
	}
	return d.By
}

func (w *follower) printStep(i, n int, s store.Step) {
	out, at := w.f.out, func(t string) string { return "[" + t + "]" }
	num := fmt.Sprintf("%d/%d", i+1, n)
	switch s.Status {
	case store.StepRunning:
		w.prog.flush(w.f.now())
		attempt := ""
		if s.Attempt > 1 {
			attempt = fmt.Sprintf(" (attempt %d)", s.Attempt)
		}
		fmt.Fprintf(out, "%s ▶ %s %s%s\n", at(s.Started.Format("15:04:05")), num, Clean(s.Title), attempt)
	case store.StepDone:
		w.prog.flush(w.f.now())
		fmt.Fprintf(out, "%s ✔ %s done in %s: %s\n", at(s.Ended.Format("15:04:05")), num, format.Duration(s.Ended.Sub(s.Started)), Clean(s.Detail))
	case store.StepFailed:
		w.prog.flush(w.f.now())
		fmt.Fprintf(out, "%s ✖ %s %s failed after %s: %s\n", at(s.Ended.Format("15:04:05")), num, Clean(s.Title), format.Duration(s.Ended.Sub(s.Started)), Clean(s.Detail))
	case store.StepSkipped:
		fmt.Fprintf(out, "%s – %s %s: %s\n", at(w.f.now().Format("15:04:05")), num, Clean(s.Title), Clean(s.Detail))
	}
}

// closed says who answered the question shown here.
func (w *follower) closed(ctx context.Context, cp store.Checkpoint) {
	ds, _ := w.f.eng.Decisions(ctx, w.id)
	for _, d := range ds {
		if d.Checkpoint == cp.ID {
			by := d.By
			if d.ByName != "" {
				by = d.ByName
			}
			fmt.Fprintf(w.f.out, "[%s] %s, chosen by %s (%s)\n", d.At.Local().Format("15:04:05"), bot.ActionLabel(d.Action), Clean(by), d.Via)
			return
		}
	}
}

// ask prints the question and its choices.
func (w *follower) ask(cp store.Checkpoint) {
	out := w.f.out
	w.prog.flush(w.f.now())
	fmt.Fprintf(out, "\n? Run %s asks: %s\n", w.id, Clean(w.besidesStepLine(cp)))
	if cp.URL != "" {
		fmt.Fprintf(out, "  Check: %s\n", Clean(cp.URL))
	}
	fmt.Fprintf(out, "  Choices: %s — type a number or a word (Ctrl-C: abort or leave)\n", choiceList(cp.Options))
}

func choiceList(opts []store.Action) string {
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = fmt.Sprintf("%d) %s", i+1, o)
	}
	return strings.Join(parts, "  ")
}

// parseAnswer reads "2", "roll back", "rollback", "done".
func parseAnswer(s string, opts []store.Action) (store.Action, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= len(opts) {
		return opts[n-1], true
	}
	a := store.Action(strings.NewReplacer(" ", "", "-", "").Replace(s))
	if a == "done" {
		a = store.ActionContinue
	}
	for _, o := range opts {
		if o == a {
			return a, true
		}
	}
	return "", false
}

// answer records a typed answer to the open question.
func (w *follower) answer(ctx context.Context, text string) {
	out := w.f.out
	if text == "" {
		return
	}
	cp := w.asked
	if cp == nil {
		fmt.Fprintf(out, "  Run %s asks nothing now (%s). Ctrl-C to abort it or stop following.\n", w.id, Clean(bot.RunStatus(w.last)))
		return
	}
	action, ok := parseAnswer(text, cp.Options)
	if !ok {
		fmt.Fprintf(out, "  %q is not an option here. Choices: %s\n", CleanLine(text), choiceList(cp.Options))
		return
	}
	said := fmt.Sprintf("answer %s run %s checkpoint %s", action, w.id, cp.ID)
	rep := w.f.disp.Decide(ctx, w.f.who, bot.Answer{RunID: w.id, Checkpoint: cp.ID, Action: action, Said: said})
	switch {
	case rep.Outcome.Kind == bot.OK:
	case errors.Is(rep.Err, store.ErrAlreadyDecided):
		fmt.Fprintln(out, "  Someone else decided first; following their decision.")
	default:
		fmt.Fprintf(out, "  %s\n", Clean(rep.Plain()))
	}
}

// finish prints the summary of the finished run and, when traffic does
// not reach the app, the commands that bring it back.
func (w *follower) finish() {
	w.prog.flush(w.f.now())
	r := w.last
	sum := procedures.Summary(r)
	fmt.Fprintf(w.f.out, "\n%s\n", Clean(sum))
	if r.State != store.StateSucceeded && !strings.Contains(sum, "Traffic: to the app nodes") && !procedures.ChangedNothing(r) {
		p := w.f.opts.Prefix
		fmt.Fprintf(w.f.out, "To bring traffic back: %s traffic on %s (once the nodes serve), or %s run start %s (starts the nodes, then switches traffic on).\n", p, r.Cluster, p, r.Cluster)
	}
}

// leave says how the run stands and the command that continues it.
func (w *follower) leave() {
	w.prog.flush(w.f.now())
	r, p := w.last, w.f.opts.Prefix
	fmt.Fprintf(w.f.out, "\nLeft run %s as it is: %s.\nContinue it with: %s attach %s", r.ID, Clean(bot.RunStatus(r)), p, r.ID)
	if cp := r.Checkpoint; cp != nil {
		opts := make([]string, len(cp.Options))
		for i, o := range cp.Options {
			opts[i] = string(o)
		}
		fmt.Fprintf(w.f.out, " (or answer it: %s decide %s %s)", p, r.ID, strings.Join(opts, "|"))
	}
	fmt.Fprintf(w.f.out, ".\nA nocobot serve on this store also takes it over.\n")
}

// besidesStepLine is a failure's question without the failure, which the
// step's line just above says already.
func (w *follower) besidesStepLine(cp store.Checkpoint) string {
	if cp.Step < 0 || cp.Step >= len(w.last.Steps) {
		return cp.Question
	}
	st := w.last.Steps[cp.Step]
	if st.Status != store.StepFailed || st.Detail == "" {
		return cp.Question
	}
	if rest, ok := strings.CutPrefix(cp.Question, st.Title+" failed: "+st.Detail+". "); ok {
		return st.Title + " failed (see above). " + rest
	}
	return cp.Question
}
