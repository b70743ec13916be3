package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/term"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// following is nocobot built for a command that follows runs here: the
// engine runs (driving only what this process starts or attaches to),
// the front reads the operator's lines.
type following struct {
	app   *app.App
	front *terminal.Front
	stop  func()
}

func follow(ctx context.Context, e *env, a *app.App, onInterrupt string, lines <-chan terminal.Line, out io.Writer) (*following, error) {
	opts := terminal.Options{Interactive: isTerminal(e.stdin), Interrupts: e.interrupts, Prefix: "nocobot", OnInterrupt: terminal.Leave}
	if onInterrupt != "" {
		c, err := terminal.ParseChoice(onInterrupt)
		if err != nil {
			return nil, &cmdError{code: exitUsage, err: err}
		}
		opts.OnInterrupt = c
	}
	if lines == nil {
		lines = terminal.Feed(terminal.NewReader(e.stdin), opts.Interactive)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Engine.RunOwn(runCtx) }()
	f := terminal.New(a.Dispatcher, a.Engine, lines, out, operator(a.Config), opts)
	return &following{app: a, front: f, stop: func() { cancel(); <-done }}, nil
}

// followLevel is the default log level of a command that prints a run's
// steps: at a terminal only errors join the step lines (the steps say
// the rest); otherwise warnings too.
func followLevel(e *env) string {
	if isTerminal(e.stdout) {
		return "error"
	}
	return "warn"
}

// endErr is the exit of a followed run: its outcome, or how to continue it.
func endErr(end terminal.End) error {
	switch {
	case end.Left:
		return &cmdError{code: exitLeft, err: fmt.Errorf("run %s is left unfinished: continue it with nocobot attach %s", end.Run.ID, end.Run.ID)}
	case end.Run.State == store.StateSucceeded:
		return nil
	case end.Run.State == store.StateRolledBack:
		return &cmdError{code: exitRolledBack}
	}
	return &cmdError{code: exitAborted}
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "run", "<procedure> [args] [--dry-run] [--on-interrupt abort|leave]",
		"Runs a procedure at this terminal: each step is printed as it starts and ends,\nand every checkpoint asks here. Ctrl-C or the end of input asks whether to\nabort the run safely or leave it for nocobot attach; without a terminal\n--on-interrupt says which (default leave).\n\nProcedures:\n"+procedureHelp())
	onInt := fs.String("on-interrupt", "", "without a terminal, what Ctrl-C or the end of input does (a `choice`): abort or leave")
	g.defaultLevel = followLevel(e)
	pos, err := parseArgs(fs, args, true)
	if err != nil {
		return err
	}
	cmd, err := procedureWords("nocobot run", pos)
	if err != nil {
		return err
	}
	if cmd.DryRun {
		return plan(ctx, e, g, cmd)
	}
	a, err := setup(ctx, g, e)
	if err != nil {
		return err
	}
	defer a.Close()
	named := cmd.Cluster
	if cmd.Cluster, err = a.Dispatcher.ResolveCluster(named, bot.Caller{}); err != nil {
		return clusterErr(named, err)
	}
	fl, err := follow(ctx, e, a, *onInt, nil, e.stdout)
	if err != nil {
		return err
	}
	defer fl.stop()
	end, err := fl.front.Start(ctx, pos, "nocobot run "+strings.Join(pos, " "))
	if err != nil {
		var re terminal.ReplyError
		if errors.As(err, &re) {
			return replyErr(re.R)
		}
		return err
	}
	return endErr(end)
}

func cmdAttach(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "attach", "<run> [--on-interrupt abort|leave]",
		"Follows a run and answers its checkpoints here. When no live process drives\nit (its terminal was closed, its process killed), this one takes it over.")
	onInt := fs.String("on-interrupt", "", "without a terminal, what Ctrl-C or the end of input does (a `choice`): abort or leave")
	g.defaultLevel = followLevel(e)
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("which run? give its id, e.g. nocobot attach r1122-7fq3 (see nocobot history)")
	}
	a, err := setup(ctx, g, e)
	if err != nil {
		return err
	}
	defer a.Close()
	fl, err := follow(ctx, e, a, *onInt, nil, e.stdout)
	if err != nil {
		return err
	}
	defer fl.stop()
	end, err := fl.front.Attach(ctx, pos[0], "nocobot attach "+pos[0])
	if err != nil {
		var re terminal.ReplyError
		if errors.As(err, &re) {
			return replyErr(re.R)
		}
		return err
	}
	return endErr(end)
}

func cmdShell(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "shell", "", "An interactive prompt for the words of /nocobase (with or without the\nprefix), attach and decide; line editing and history at a terminal.")
	g.defaultLevel = followLevel(e)
	if _, err := parseArgs(fs, args, false); err != nil {
		return err
	}
	a, err := setup(ctx, g, e)
	if err != nil {
		return err
	}
	defer a.Close()
	out, lines := e.stdout, (<-chan terminal.Line)(nil)
	if in, ok := rawTerminal(e); ok {
		defer in.restore()
		out = in.t
		lines = terminal.Feed(in.t, true)
	}
	fl, err := follow(ctx, e, a, "", lines, out)
	if err != nil {
		return err
	}
	defer fl.stop()
	return fl.front.Shell(ctx)
}

// rawTerm is stdin at a terminal in raw mode, edited by x/term.
type rawTerm struct {
	t       *term.Terminal
	restore func()
}

func rawTerminal(e *env) (rawTerm, bool) {
	if !isTerminal(e.stdin) || !isTerminal(e.stdout) {
		return rawTerm{}, false
	}
	fd := fdOf(e.stdin)
	st, err := term.MakeRaw(fd)
	if err != nil {
		return rawTerm{}, false
	}
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{e.stdin, e.stdout}, "nocobot> ")
	if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
		_ = t.SetSize(w, h)
	}
	return rawTerm{t: t, restore: func() { _ = term.Restore(fd, st) }}, true
}

// procedureHelp lists the procedures from the command table.
func procedureHelp() string {
	var b strings.Builder
	for _, c := range bot.Commands() {
		if c.Procedure {
			fmt.Fprintf(&b, "  nocobot run %s %s\n      %s\n", c.Name, c.Args, c.Help)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// procedureWords parses "upgrade 1.7.14 prod --dry-run" with the shared parser.
func procedureWords(prefix string, words []string) (bot.Command, error) {
	if len(words) == 0 {
		return bot.Command{}, usageErr("which procedure? %s (see %s help)", procedures.ProcedureNames(), prefix)
	}
	cmd, err := bot.ParseWords(prefix, words)
	if err != nil {
		return bot.Command{}, &cmdError{code: exitUsage, err: err}
	}
	if !cmd.IsProcedure() {
		return bot.Command{}, usageErr("%q is not a procedure: %s", words[0], procedures.ProcedureNames())
	}
	return cmd, nil
}

func cmdPlan(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "plan", "<procedure> [args] [--json]", "Prints the numbered steps a run would take, with the nodes and images\nwhen the Docker engine is reachable. Needs no secrets; changes nothing.")
	asJSON := fs.Bool("json", false, "the plan as a JSON object (keys: docs/cli.md)")
	pos, err := parseArgs(fs, args, true)
	if err != nil {
		return err
	}
	cmd, err := procedureWords("nocobot plan", pos)
	if err != nil {
		return err
	}
	g.json = *asJSON
	return plan(ctx, e, g, cmd)
}

// plan prints a plan from an engine built without secrets or the store.
func plan(ctx context.Context, e *env, g *globals, cmd bot.Command) error {
	cfg, log, err := load(g, e.stderr)
	if err != nil {
		return err
	}
	named := cmd.Cluster
	if cmd.Cluster, err = resolveCluster(cfg, named); err != nil {
		return clusterErr(named, err)
	}
	p, err := app.NewPlanner(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	pv, err := p.Engine.PlanOf(ctx, cmd.Request("plan", bot.ViaTerminal))
	if err != nil {
		return &cmdError{code: exitUsage, err: err}
	}
	if g.json {
		return writeJSON(e.stdout, planJSON(pv))
	}
	fmt.Fprintln(e.stdout, terminal.Clean(pv.Text()))
	return nil
}

// clusterErr is the error of a cluster that could not be resolved: not
// found when one was named, else a usage error (which one?).
func clusterErr(named string, err error) error {
	if named != "" || errors.Is(err, store.ErrNotFound) {
		return notFound(err)
	}
	return &cmdError{code: exitUsage, err: err}
}

func resolveCluster(cfg *config.Config, name string) (string, error) {
	var names []string
	for _, c := range cfg.Clusters {
		if c.Name == name {
			return name, nil
		}
		names = append(names, c.Name)
	}
	switch {
	case name != "":
		return "", fmt.Errorf("unknown cluster %q (known: %s)", name, strings.Join(names, ", "))
	case len(names) == 1:
		return names[0], nil
	}
	return "", fmt.Errorf("which cluster? name one of: %s", strings.Join(names, ", "))
}
