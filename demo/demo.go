// Package demo shows what nocobot does in about a minute on a machine with
// nothing but Go: nocobot's own engine, embedded store and terminal front
// run procedures against a simulated three-node NocoBase cluster inside
// the process — an upgrade with its checkpoint, an upgrade rolled back, an
// in-app maintenance with a plugin action, and a maintenance window.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/events"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Options configure a demo.
type Options struct {
	// Auto answers every checkpoint itself; Run then fails unless every
	// run ended as the script expects.
	Auto bool
	In   io.Reader
	Out  io.Writer
	// Interactive: a person types at a terminal, so Ctrl-C and the end
	// of input ask, as in nocobot run.
	Interactive bool
	// Interrupts delivers Ctrl-C.
	Interrupts <-chan struct{}
	// OpenStore opens the embedded store at path: the same store `serve`
	// uses, so the demo shows the real thing.
	OpenStore func(ctx context.Context, path string) (store.Store, error)
	Log       zerolog.Logger
}

const cluster = "prod"

// scene is one procedure of the demo.
type scene struct {
	intro   string
	command string       // as typed in Slack or at the terminal
	answer  store.Action // what --auto answers at the checkpoint
	want    store.RunState
	version string // the version the cluster runs afterwards
	window  bool   // started by a maintenance window, not typed
}

var scenes = []scene{
	{intro: "An upgrade, the way NocoBase's cluster guide says: traffic to the maintenance page, every node stopped,\n" +
		"a verified backup, ONE node migrates the database, a person checks it, then the others and traffic.",
		command: "upgrade 2.2.16", answer: store.ActionContinue, want: store.StateSucceeded, version: "2.2.16"},
	{intro: "Another upgrade. This time the check at the checkpoint fails (say a workflow your team needs broke):\n" +
		"roll back. nocobot restores the backup it took before the migration and starts the previous image.",
		command: "upgrade 2.3.0", answer: store.ActionRollback, want: store.StateRolledBack, version: "2.2.16"},
	{intro: "In-app maintenance: scale down to one node (plugin changes reach only the node that makes them),\n" +
		"a safety backup, the plugin action through NocoBase's API, a check, then the other nodes.",
		command: "maintain plugin enable @nocobase/plugin-map", answer: store.ActionContinue, want: store.StateSucceeded, version: "2.2.16"},
	{intro: "A maintenance window, as added in Slack with  /nocobase schedule add \"0 2 * * 6\" maintain backup --announce 30m\n" +
		"The demo's scheduler clock is set to 8 seconds before Saturday 02:00 UTC, so the window opens now.",
		command: "maintain backup", answer: store.ActionContinue, want: store.StateSucceeded, version: "2.2.16", window: true},
}

// demoConfig is the configuration the dispatcher checks commands against:
// the one simulated cluster.
func demoConfig() *config.Config {
	return &config.Config{Slack: config.Slack{Command: "/nocobase"}, Clusters: []config.Cluster{{Name: cluster}}}
}

// result is how one scene ended.
type result struct {
	scene scene
	run   store.Run
	err   error
	// interrupted: Ctrl-C or the end of input aborted the run.
	interrupted bool
}

// Run plays the demo and returns an error when something did not go as
// expected (with Auto: any run that did not end as the script says).
func Run(ctx context.Context, o Options) error {
	if o.OpenStore == nil {
		return errors.New("demo: no store opener")
	}
	dir, err := os.MkdirTemp("", "nocobot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := o.OpenStore(ctx, filepath.Join(dir, "nocobot.db"))
	if err != nil {
		return fmt.Errorf("demo: open the store: %w", err)
	}
	defer st.Close()

	sim := newCluster(realistic, "2.2.15", "prod-app-1", "prod-app-2", "prod-app-3")
	bus := events.NewBus()
	eng, err := procedures.New(procedures.Options{Store: st, Log: o.Log, Owner: "demo", Events: bus, Clusters: []*procedures.Cluster{sim.procedures(cluster)}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ctx) }()
	defer func() { cancel(); <-engDone }()

	out := o.Out
	fmt.Fprintf(out, `nocobot demo
============
SIMULATED: the NocoBase cluster below (nodes prod-app-1..3 on 2.2.15, PostgreSQL, storage, nginx)
runs inside this process, with short but realistic delays. Nothing else is simulated: the
engine, the store (%s) and the terminal front are nocobot's own.
`, dir)
	if o.Auto {
		fmt.Fprintln(out, "--auto: the demo answers each checkpoint itself, as the script says.")
	} else {
		fmt.Fprintln(out, "At each checkpoint, type an answer (continue / rollback / abort, or their start: c, ro, a) and press Enter.\nCtrl-C asks whether to abort the run safely, which ends the demo.")
	}
	fmt.Fprintf(out, "\nCluster: %s\n", sim.State())

	disp, err := bot.New(bot.Options{Config: demoConfig(), Engine: eng, Log: o.Log, TrustTerminal: true})
	if err != nil {
		return err
	}
	p := newPlayer(o, eng, bus, disp, sim, st)
	var results []result
	for i, sc := range scenes {
		fmt.Fprintf(out, "\n── %d/%d ─────────────────────────────────────────────────────────────\n%s\n", i+1, len(scenes), sc.intro)
		var end terminal.End
		if sc.window {
			end, err = p.window(ctx, sc)
		} else {
			fmt.Fprintf(out, "\n$ nocobot run %s\n", sc.command)
			end, err = p.typed(ctx, sc)
		}
		results = append(results, result{scene: sc, run: end.Run, err: err, interrupted: end.Interrupted})
		if err != nil && ctx.Err() != nil {
			break
		}
		if end.Interrupted || errors.Is(err, errInterrupted) {
			// The operator stopped, or no answers are left to give:
			// the next runs would end the same way.
			fmt.Fprintf(out, "Cluster: %s\nThe demo ends here: the run was interrupted.\n", sim.State())
			break
		}
		fmt.Fprintf(out, "Cluster: %s\n", sim.State())
	}
	return p.report(results)
}

// player runs the scenes through the terminal front.
type player struct {
	o     Options
	eng   *procedures.Engine
	bus   *events.Bus
	disp  terminal.Dispatcher
	sim   simCluster
	st    store.Store
	lines <-chan terminal.Line // the operator's lines, when not Auto: one reader for every scene
}

func newPlayer(o Options, eng *procedures.Engine, bus *events.Bus, disp terminal.Dispatcher, sim simCluster, st store.Store) *player {
	p := &player{o: o, eng: eng, bus: bus, disp: disp, sim: sim, st: st}
	if !o.Auto {
		in := o.In
		if in == nil {
			in = strings.NewReader("")
		}
		p.lines = terminal.Feed(terminal.NewReader(in), o.Interactive)
	}
	return p
}

// typed runs a command as `nocobot run` does: the terminal front starts
// it, prints its steps and asks at its checkpoint.
func (p *player) typed(ctx context.Context, sc scene) (terminal.End, error) {
	words, err := procedures.SplitWords(sc.command)
	if err != nil {
		return terminal.End{}, err
	}
	// The demo's one cluster is the one a command names none for.
	return p.follow(ctx, sc, p.disp, p.eng, words, "nocobot run "+sc.command)
}

// follow runs the terminal front on eng, feeding it the operator's lines
// or, with Auto, the scene's answer at each checkpoint. Its runs cannot
// be left for later (the store goes with the demo): an interruption
// asks whether to abort, and without a person aborts.
func (p *player) follow(ctx context.Context, sc scene, disp terminal.Dispatcher, eng terminal.Engine, words []string, said string) (terminal.End, error) {
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	lines, interactive := p.lines, p.o.Interactive
	if p.o.Auto {
		in, feed := io.Pipe()
		defer in.Close()
		go p.autoAnswer(fctx, feed, sc.answer)
		// No person answers: Ctrl-C aborts at once.
		lines, interactive = terminal.Feed(terminal.NewReader(in), false), false
	}
	front := terminal.New(disp, eng, lines, p.o.Out,
		bot.Caller{User: "terminal:demo", Via: bot.ViaTerminal, Prefix: "nocobot"},
		terminal.Options{NoLeave: true, Interactive: interactive, Interrupts: p.o.Interrupts})
	return front.Start(fctx, words, said)
}

// autoAnswer types answer (after a pause, as a person would) at every
// checkpoint of the runs it sees.
func (p *player) autoAnswer(ctx context.Context, feed *io.PipeWriter, answer store.Action) {
	sub := p.eng.Subscribe()
	defer sub.Close()
	defer feed.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if ev.Kind != events.Checkpoint {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(1500 * time.Millisecond):
			}
			fmt.Fprintf(p.o.Out, "%s   (typed by --auto)\n", answer)
			if _, err := io.WriteString(feed, string(answer)+"\n"); err != nil {
				return
			}
		}
	}
}

// outcome marks, as the summary's legend explains them.
const legend = "✔ succeeded   ↩ rolled back (backup restored, previous version running)   ✖ failed, aborted or not as the script expects   – not played"

// outcome is a scene's mark and words in the summary: what its run did,
// and with Auto whether that is what the script expects.
func (p *player) outcome(r result) (mark, state string, bad bool) {
	state = string(r.run.State)
	switch {
	case r.err != nil:
		mark, state = "✖", "error: "+r.err.Error()
	case r.run.State == store.StateSucceeded:
		mark = "✔"
	case r.run.State == store.StateRolledBack:
		mark = "↩"
	default:
		mark = "✖"
	}
	if r.interrupted {
		state += " (interrupted)"
	}
	if r.err == nil && r.run.State != r.scene.want && p.o.Auto {
		mark, state = "✖", state+", expected "+string(r.scene.want)
	}
	return mark, state, r.err != nil || (p.o.Auto && r.run.State != r.scene.want)
}

// report prints how each scene ended and returns an error if the cluster
// broke a safety rule, a scene failed to run, or, with Auto, a run did
// not end as expected.
func (p *player) report(results []result) error {
	out := p.o.Out
	fmt.Fprintf(out, "\n── Summary ─────────────────────────────────────────────────────────\n")
	var bad []string
	for i, sc := range scenes {
		via := "typed"
		if sc.window {
			via = "window"
		}
		if i >= len(results) {
			fmt.Fprintf(out, "– %-44s %-7s %s\n", sc.command, via, "not played")
			continue
		}
		r := results[i]
		mark, state, wrong := p.outcome(r)
		if wrong {
			bad = append(bad, fmt.Sprintf("%s ended %s", r.scene.command, state))
		}
		fmt.Fprintf(out, "%s %-44s %-7s %-12s %s\n", mark, sc.command, via, state, r.run.ID)
	}
	fmt.Fprintf(out, "Marks: %s\n", legend)
	if len(results) < len(scenes) {
		why := ""
		if last := results[len(results)-1]; last.interrupted {
			why = fmt.Sprintf(": run %s was interrupted and aborted safely", last.run.ID)
		}
		bad = append(bad, fmt.Sprintf("stopped after %d of %d procedures%s", len(results), len(scenes), why))
	}
	if v := p.sim.Violations(); len(v) > 0 {
		bad = append(bad, "safety rules broken: "+strings.Join(v, "; "))
	}
	if p.o.Auto && len(results) > 0 {
		if want := results[len(results)-1].scene.version; !p.sim.settled(want) {
			bad = append(bad, fmt.Sprintf("the cluster is not back on %s with every node: %s", want, p.sim.State()))
		}
	}
	if p.st != nil {
		if runs, err := p.st.ListRuns(context.Background(), cluster, 10); err == nil {
			fmt.Fprintf(out, "The store recorded %d runs (nocobot history lists them in a real set-up).\n", len(runs))
		}
	}
	fmt.Fprintf(out, "Cluster: %s\n", p.sim.State())
	fmt.Fprintln(out, "\nThe cluster was simulated. For a real one: deploy/compose.yaml runs NocoBase in cluster mode with nocobot.")
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}
