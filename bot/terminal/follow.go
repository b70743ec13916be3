package terminal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// follower renders one run from its snapshots: events when this process
// drives it, the store when another does. It prints what changed since
// the last snapshot, so both sources give the same lines.
type follower struct {
	f    *Front
	id   string
	last store.Run
	seen bool
	// view holds the questions asked and their answers as the store
	// records them; the lines are rendered from it.
	view     *bot.RunView
	prog     *progress
	progSeen map[int]string    // each running step's latest progress
	asked    *store.Checkpoint // the open question shown here
	aborting bool
	// prompting: a question of the front's own (Ctrl-C's) waits for its
	// answer on the screen: the live area stays away.
	prompting bool
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

func (f *Front) follow(ctx context.Context, sub *events.Subscription, id string, driving bool) (*follower, End, error) {
	w := &follower{f: f, id: id, view: bot.NewRunView(), prog: &progress{out: f.out, every: f.opts.ProgressEvery}, progSeen: map[int]string{}, driving: driving}
	end, err := w.run(ctx, sub)
	return w, end, err
}

func (w *follower) run(ctx context.Context, sub *events.Subscription) (End, error) {
	f, id := w.f, w.id
	r, err := f.eng.RunByID(ctx, id)
	if err != nil {
		return End{}, err
	}
	w.update(ctx, r)
	tick := time.NewTicker(f.opts.PollEvery)
	defer tick.Stop()
	feed, lines := sub.C, f.lines
	for !w.last.State.Finished() {
		choice := Keep
		in := lines
		// Piped lines are a script: each answers the next question, so
		// none is read while nothing is asked.
		if w.decided || (!f.opts.Interactive && w.asked == nil) {
			in = nil
		}
		select {
		case <-ctx.Done():
			w.leave()
			return End{Run: w.last, Left: true}, nil
		case ev, ok := <-feed:
			if !ok {
				feed = nil
				continue
			}
			if ev.Run.ID != id {
				continue
			}
			switch ev.Kind {
			case events.RunResumed, events.Reminder, events.StoreDown, events.StoreBack:
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
		w.drawLive()
		switch choice {
		case Leave:
			w.leave()
			return End{Run: w.last, Left: true}, nil
		case Abort:
			w.abort(ctx)
		}
	}
	w.finish()
	return End{Run: w.last, Interrupted: w.aborting}, nil
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
		fmt.Fprintf(f.out, "%s (%d steps) — %s\n", f.scr.paint(bold, fmt.Sprintf("Run %s: %s", r.ID, Clean(procedures.Title(r)))), bot.ForwardSteps(r.Steps), Clean(bot.RunStatus(r)))
	}
	if w.asked != nil && (r.Checkpoint == nil || r.Checkpoint.ID != w.asked.ID) {
		w.closed(ctx, *w.asked)
		w.asked, w.decided = nil, false
	}
	for i, s := range r.Steps {
		var prev store.Step
		if i < len(w.last.Steps) {
			prev = w.last.Steps[i]
		} else if s.Rollback && (i == 0 || !r.Steps[i-1].Rollback) {
			n := len(r.Steps) - i
			fmt.Fprintf(f.out, "%s: %d steps, R1 to R%d as the plan numbers them\n", f.scr.paint(yellow, "Roll back"), n, n)
		}
		if s.Status != prev.Status || s.Attempt != prev.Attempt {
			// A step that began and ended between two snapshots (or
			// before an attach) gets its start line too: the done line
			// names it only by number.
			startShown := prev.Status == store.StepRunning && prev.Attempt == s.Attempt
			w.printStep(r.Steps, i, startShown)
		}
		if s.Status == store.StepRunning && (prev.Status != store.StepRunning || s.Attempt != prev.Attempt) {
			delete(w.progSeen, i) // a new attempt: its own progress
		}
		// At a terminal the live line shows progress; elsewhere it is a line.
		if s.Status == store.StepRunning && s.Progress != "" && s.Progress != w.progSeen[i] {
			w.progSeen[i] = s.Progress
			if !f.scr.live {
				w.prog.add(f.now(), i, bot.StepNumber(r.Steps, i), s.Progress, w.since(s))
			}
		}
	}
	w.last = r
	w.view.Show(r)
	if r.Checkpoint != nil && w.asked == nil && !r.State.Finished() {
		cp := *r.Checkpoint
		w.view.Ask(cp)
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

// At a terminal only the marks and times are coloured: "3/10 Title"
// stays one run of text, for the eye and for a search of the screen.
func (w *follower) printStep(steps []store.Step, i int, startShown bool) {
	out, scr, s := w.f.out, w.f.scr, steps[i]
	at := "[" + w.f.now().Format("15:04:05") + "]"
	if !s.Ended.IsZero() {
		at = "[" + s.Ended.Format("15:04:05") + "]"
	}
	num := bot.StepNumber(steps, i)
	switch s.Status {
	case store.StepRunning:
		w.prog.flush(w.f.now())
		if scr.live {
			return // its live line shows it
		}
		fmt.Fprintf(out, "[%s] ▶ %s %s%s\n", s.Started.Format("15:04:05"), num, Clean(s.Title), attemptNote(s))
	case store.StepDone:
		w.prog.flush(w.f.now())
		if scr.live {
			fmt.Fprintf(out, "%s %s %s %s %s: %s\n", scr.paint(dim, at), scr.paint(green, "✔"), num, Clean(s.Title),
				scr.paint(dim, "done in "+format.Duration(s.Ended.Sub(s.Started))), Clean(s.Detail))
			return
		}
		if !startShown {
			fmt.Fprintf(out, "[%s] ▶ %s %s%s\n", s.Started.Format("15:04:05"), num, Clean(s.Title), attemptNote(s))
		}
		fmt.Fprintf(out, "%s ✔ %s done in %s: %s\n", at, num, format.Duration(s.Ended.Sub(s.Started)), Clean(s.Detail))
	case store.StepFailed:
		w.prog.flush(w.f.now())
		fmt.Fprintf(out, "%s %s %s %s %s: %s\n", scr.paint(dim, at), scr.paint(red, "✖"), num, Clean(s.Title),
			scr.paint(red, "failed after "+format.Duration(s.Ended.Sub(s.Started))), Clean(s.Detail))
	case store.StepSkipped:
		fmt.Fprintln(out, scr.paint(dim, fmt.Sprintf("%s – %s %s: %s", at, num, Clean(s.Title), Clean(s.Detail))))
	}
}

func attemptNote(s store.Step) string {
	if s.Attempt > 1 {
		return fmt.Sprintf(" (attempt %d)", s.Attempt)
	}
	return ""
}

// spinner turns in a live line, so a step that prints nothing still
// shows it is being waited on.
var spinner = []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")

// drawLive redraws, at a terminal, one line per running step: its
// number, title, time so far and latest progress. Nothing is drawn while
// a question waits for its answer.
func (w *follower) drawLive() {
	scr := w.f.scr
	if !scr.live || w.asked != nil || w.prompting || w.last.State.Finished() {
		return
	}
	var lines []string
	now := w.f.now()
	for i, s := range w.last.Steps {
		if s.Status != store.StepRunning {
			continue
		}
		l := fmt.Sprintf("  %s %s %s%s %s", scr.paint(cyan, string(spinner[now.UnixMilli()/100%int64(len(spinner))])),
			bot.StepNumber(w.last.Steps, i), Clean(s.Title), attemptNote(s), scr.paint(dim, "· "+w.since(s)))
		// The latest progress seen: a snapshot read from the store may
		// not carry it.
		if p := w.progSeen[i]; p != "" {
			l += " " + scr.paint(dim, "·") + " " + CleanLine(p)
		}
		lines = append(lines, l)
	}
	scr.draw(lines)
}

// closed says who answered the question shown here.
func (w *follower) closed(ctx context.Context, cp store.Checkpoint) {
	ds, _ := w.f.eng.Decisions(ctx, w.id)
	for _, d := range ds {
		w.view.Decide(d)
	}
	if q, ok := w.view.Questions[cp.ID]; ok && q.Decision != nil {
		d := q.Decision
		fmt.Fprintf(w.f.out, "[%s] %s, chosen by %s (%s)\n", d.At.Local().Format("15:04:05"), bot.ActionLabel(d.Action), Clean(deciderName(*d)), d.Via)
	}
}

// ask prints the question and its choices.
func (w *follower) ask(cp store.Checkpoint) {
	out := w.f.out
	w.prog.flush(w.f.now())
	fmt.Fprintf(out, "\n%s %s\n", w.f.scr.paint(yellow+";"+bold, "? Run "+w.id+" asks:"), Clean(w.besidesStepLine(cp)))
	if cp.URL != "" {
		fmt.Fprintf(out, "  Check: %s\n", Clean(cp.URL))
	}
	ctrlC := "abort or leave"
	if w.f.opts.NoLeave {
		ctrlC = "abort"
	}
	fmt.Fprintf(out, "  Choices: %s — type a number, or a word or its start (c, y: continue) (Ctrl-C: %s)\n", choiceList(cp.Options), ctrlC)
}

func choiceList(opts []store.Action) string {
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = fmt.Sprintf("%d) %s", i+1, o)
	}
	return strings.Join(parts, "  ")
}

// parseAnswer reads "2", "roll back", "rollback", "done", and short
// answers where they are unambiguous: a beginning of one choice only
// ("c", "ro"), and "y"/"yes"/"ok" for continue.
// When it is not one choice, fits lists the choices it could begin.
func parseAnswer(s string, opts []store.Action) (a store.Action, fits []store.Action) {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= len(opts) {
		return opts[n-1], nil
	}
	a = store.Action(strings.NewReplacer(" ", "", "-", "").Replace(s))
	switch a {
	case "done", "y", "yes", "ok":
		a = store.ActionContinue
	}
	if slices.Contains(opts, a) {
		return a, nil
	}
	for _, o := range opts {
		if a != "" && strings.HasPrefix(string(o), string(a)) {
			fits = append(fits, o)
		}
	}
	if len(fits) == 1 {
		return fits[0], nil
	}
	return "", fits
}

func actionNames(as []store.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
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
	action, fits := parseAnswer(text, cp.Options)
	switch {
	case len(fits) > 1:
		fmt.Fprintf(out, "  %q could be %s: type more of it. Choices: %s\n", CleanLine(text), strings.Join(actionNames(fits), " or "), choiceList(cp.Options))
		return
	case action == "":
		fmt.Fprintf(out, "  %q is not an option here. Choices: %s\n", CleanLine(text), choiceList(cp.Options))
		return
	}
	said := fmt.Sprintf("answer %s run %s checkpoint %s", action, w.id, cp.ID)
	rep := w.f.disp.Decide(ctx, w.f.who, bot.Answer{RunID: w.id, Checkpoint: cp.ID, Action: action, Said: said})
	// Answered: the next lines wait for the next question.
	switch {
	case rep.Outcome.Kind == bot.OK:
		w.decided = true
	case errors.Is(rep.Err, store.ErrAlreadyDecided):
		w.decided = true
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
	w.table()
	fmt.Fprintf(w.f.out, "\n%s\n", w.f.scr.paint(bold, Clean(sum)))
	if r.State != store.StateSucceeded && !strings.Contains(sum, "Traffic: to the app nodes") && !procedures.ChangedNothing(r) {
		p := w.f.opts.Prefix
		fmt.Fprintf(w.f.out, "To bring traffic back: %s traffic on %s (once the nodes serve), or %s run start %s (starts the nodes, then switches traffic on).\n", p, r.Cluster, p, r.Cluster)
	}
}

// leave says how the run stands and the command that continues it.
func (w *follower) leave() {
	w.prog.flush(w.f.now())
	r, p := w.last, w.f.opts.Prefix
	if w.f.opts.NoLeave {
		fmt.Fprintf(w.f.out, "\nStopped following run %s: %s. It cannot be continued: its store ends with this process.\n", r.ID, Clean(bot.RunStatus(r)))
		return
	}
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
