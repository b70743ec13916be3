// Command nocobot runs NocoBase cluster maintenance procedures from Slack
// (serve) or a terminal (run), step by step, with backups, a human
// checkpoint and a way back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/demo"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/internal/buildinfo"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

const usageHead = `nocobot runs NocoBase cluster maintenance from Slack or a terminal.

Usage:
  nocobot serve                       run the Slack bot (and the maintenance windows)
  nocobot run <procedure> [args]      run a procedure here, answering checkpoints at the prompt
  nocobot plan <procedure> [args]     print the steps a run would take; changes nothing
  nocobot history [n]                 past runs with outcome and duration
  nocobot backups [cluster]           backups with age, size and version
  nocobot audit [--since 24h] [--run id] [-n 50]   the audit log
  nocobot status [cluster]            nodes, load balancer, the running run, backups, windows
  nocobot decide <run> continue|rollback|abort|retry|done   answer a run's open question
  nocobot cancel <run>                abort a run (the current step ends safely)
  nocobot config check                validate the configuration file
  nocobot demo [--auto]               a minute of nocobot on a simulated cluster, nothing to install
  nocobot version

Procedures (same words as in Slack):
`

const usageTail = `
Every command takes --config FILE (default ./nocobot.yaml), --log-format json|console
and --log-level debug|info|warn|error; every command has --help.
`

// usage is the --help text; the procedures' lines come from their registry.
func usage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, p := range procedures.Procedures() {
		fmt.Fprintf(&b, "  %s\n", p.Usage)
	}
	b.WriteString(usageTail)
	return b.String()
}

// exit codes
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitRolledBack = 3
	exitAborted    = 4
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// globals are the flags every subcommand accepts.
type globals struct {
	config, logFormat, logLevel string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.config, "config", "nocobot.yaml", "configuration file")
	fs.StringVar(&g.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

func (g *globals) logger(stderr io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(g.logLevel)
	if err != nil || g.logLevel == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: expected debug, info, warn or error", g.logLevel)
	}
	var w io.Writer = stderr
	switch g.logFormat {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: expected json or console", g.logFormat)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// cmdError is a one-line error with an exit code.
type cmdError struct {
	code int
	err  error
}

func (e *cmdError) Error() string { return e.err.Error() }

func usageErr(format string, a ...any) error {
	return &cmdError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage())
		return exitOK
	}
	cmds := map[string]func(context.Context, []string, io.Reader, io.Writer, io.Writer) error{
		"serve": cmdServe, "run": cmdRun, "plan": cmdPlan, "history": cmdHistory, "backups": cmdBackups,
		"audit": cmdAudit, "config": cmdConfig, "version": cmdVersion, "demo": cmdDemo,
		"status": cmdStatus, "decide": cmdDecide, "cancel": cmdCancel,
	}
	fn, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "nocobot: unknown command %q (see nocobot --help)\n", args[0])
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := fn(ctx, args[1:], stdin, stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitError
	var ce *cmdError
	if errors.As(err, &ce) {
		code = ce.code
		if ce.err == nil {
			return code
		}
	}
	// One line: the first line of the message.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	fmt.Fprintf(stderr, "nocobot %s: %s\n", args[0], msg)
	return code
}

func newFlags(name, args, help string, stderr io.Writer) (*flag.FlagSet, *globals) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g := &globals{}
	g.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nocobot %s %s\n%s\n\nFlags:\n", name, args, help)
		fs.PrintDefaults()
	}
	return fs, g
}

// parseFlags accepts flags before and after positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &cmdError{code: exitUsage, err: err}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// setup loads the configuration and builds nocobot from it (the caller
// closes it).
func setup(ctx context.Context, g *globals, stderr io.Writer) (*app.App, error) {
	cfg, log, err := load(g, stderr)
	if err != nil {
		return nil, err
	}
	return app.New(ctx, cfg, log)
}

// openStore loads the configuration and opens only the store, for the
// commands that read records (the caller closes it).
func openStore(ctx context.Context, g *globals, stderr io.Writer) (store.Store, error) {
	cfg, log, err := load(g, stderr)
	if err != nil {
		return nil, err
	}
	return app.OpenStore(ctx, cfg, log)
}

func load(g *globals, stderr io.Writer) (*config.Config, zerolog.Logger, error) {
	log, err := g.logger(stderr)
	if err != nil {
		return nil, log, &cmdError{code: exitUsage, err: err}
	}
	cfg, err := config.Load(g.config)
	return cfg, log, err
}

func clusterNames(cfg *config.Config) string {
	var names []string
	for _, c := range cfg.Clusters {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// procedureCommand parses "upgrade 1.7.14 prod" with the shared parser.
func procedureCommand(disp *bot.Dispatcher, words []string) (bot.Command, error) {
	if len(words) == 0 {
		return bot.Command{}, usageErr("which procedure? %s", procedures.ProcedureNames())
	}
	cmd, err := bot.ParseWords("nocobot run", words)
	if err != nil {
		return bot.Command{}, &cmdError{code: exitUsage, err: err}
	}
	if !cmd.IsProcedure() {
		return bot.Command{}, usageErr("%q is not a procedure: %s", words[0], procedures.ProcedureNames())
	}
	cmd.Cluster, err = disp.ResolveCluster(cmd.Cluster, "")
	if err != nil {
		return bot.Command{}, &cmdError{code: exitUsage, err: err}
	}
	return cmd, nil
}

func cmdRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e, cmd, pos, err := setupProcedure(ctx, "run", "Runs a procedure at this terminal: each step is printed as it starts and ends,\nand every checkpoint asks here (continue / rollback / abort).", args, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	if cmd.DryRun {
		return printPlan(ctx, e, cmd, stdout)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Engine.RunOwn(runCtx) }()
	defer func() { cancel(); <-done }()
	end, err := terminal.New(e.Dispatcher, e.Engine, stdin, stdout, operator("nocobot run")).Run(ctx, cmd, "nocobot run "+strings.Join(pos, " "))
	if err != nil {
		return err
	}
	switch end.State {
	case store.StateSucceeded:
		return nil
	case store.StateRolledBack:
		return &cmdError{code: exitRolledBack}
	default:
		return &cmdError{code: exitAborted}
	}
}

func printPlan(ctx context.Context, e *app.App, cmd bot.Command, stdout io.Writer) error {
	p, err := e.Engine.Plan(ctx, cmd.Request("plan", "terminal"))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, p)
	return nil
}

func cmdPlan(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	e, cmd, _, err := setupProcedure(ctx, "plan", "Prints the numbered steps a run would take, with the nodes and images\nwhen the Docker engine is reachable. Changes nothing.", args, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	return printPlan(ctx, e, cmd, stdout)
}

// setupProcedure is the common start of run and plan: flags, the engine,
// and the procedure named by the arguments. The caller closes e.
func setupProcedure(ctx context.Context, name, help string, args []string, stderr io.Writer) (*app.App, bot.Command, []string, error) {
	fs, g := newFlags(name, "<procedure> [args]", help, stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, bot.Command{}, nil, err
	}
	e, err := setup(ctx, g, stderr)
	if err != nil {
		return nil, bot.Command{}, nil, err
	}
	cmd, err := procedureCommand(e.Dispatcher, pos)
	if err != nil {
		e.Close()
		return nil, bot.Command{}, nil, err
	}
	return e, cmd, pos, nil
}

func cmdHistory(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, g := newFlags("history", "[n] [--cluster name]", "Lists past runs, newest first, with outcome and duration.", stderr)
	cluster := fs.String("cluster", "", "only this cluster")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	n := 20
	if len(pos) > 1 {
		return usageErr("too many arguments")
	}
	if len(pos) == 1 {
		if _, err := fmt.Sscan(pos[0], &n); err != nil || n < 1 {
			return usageErr("%q: expected a number of runs", pos[0])
		}
	}
	st, err := openStore(ctx, g, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	runs, err := st.ListRuns(ctx, *cluster, n)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Fprintln(stdout, "No runs yet.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tWHAT\tREQUESTER\tOUTCOME\tDURATION\tDOWNTIME")
	for _, r := range runs {
		down := "-"
		if d, ok := procedures.Downtime(r); ok {
			down = format.Duration(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Local().Format("2006-01-02 15:04"), procedures.Title(r),
			r.Requester, r.State, format.Duration(procedures.Duration(r, time.Now())), down)
	}
	return tw.Flush()
}

func cmdBackups(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, g := newFlags("backups", "[cluster]", "Lists a cluster's backups, newest first, with age, size and version.", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageErr("too many arguments")
	}
	e, err := setup(ctx, g, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	if name, err = e.Dispatcher.ResolveCluster(name, ""); err != nil {
		return &cmdError{code: exitUsage, err: err}
	}
	list, err := e.Engine.Backups(ctx, name)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "No backups of %s yet.\n", name)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tAGE\tSIZE\tVERSION\tIMAGE\tRUN")
	for _, b := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, format.Age(time.Since(b.Created)), format.Bytes(b.Size), b.Version, b.Image, b.RunID)
	}
	return tw.Flush()
}

func cmdAudit(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, g := newFlags("audit", "[--since 24h] [--run id] [-n 50]", "Prints the audit log: every command, click and refusal, newest first.", stderr)
	since := fs.Duration("since", 0, "only entries this recent (e.g. 24h)")
	runID := fs.String("run", "", "only entries about this run")
	n := fs.Int("n", 50, "at most this many entries")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected %q", pos[0])
	}
	st, err := openStore(ctx, g, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	q := store.AuditQuery{RunID: *runID, Limit: *n}
	if *since > 0 {
		q.Since = time.Now().Add(-*since)
	}
	entries, err := st.Audit(ctx, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tUSER\tVIA\tCHANNEL\tACTION\tRUN\tOUTCOME")
	for _, a := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.At.Local().Format("2006-01-02 15:04:05"), a.User, a.Via, a.Channel, a.Action, a.RunID, a.Outcome)
	}
	return tw.Flush()
}

func cmdConfig(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, g := newFlags("config check", "[--connect]", "Validates the configuration file, its windows, secrets and channels: every problem\non a line, or OK. --connect also asks each outside system whether it answers.", stderr)
	connect := fs.Bool("connect", false, "also check that the store, Docker, the database, NocoBase, Slack and the probe URLs answer")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "check" {
		return usageErr("expected: nocobot config check [--connect] [--config FILE]")
	}
	return app.CheckConfig(ctx, g.config, app.CheckOptions{Connect: *connect}, stdout, stderr)
}

func cmdVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, _ := newFlags("version", "", "Prints the version.", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, buildinfo.Get())
	return nil
}

func cmdDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, g := newFlags("demo", "[--auto]", "Runs nocobot's engine, store and terminal front on a simulated three-node\nNocoBase cluster in this process: upgrade, roll back, maintain, a window.", stderr)
	auto := fs.Bool("auto", false, "answer the checkpoints itself; fail unless every run ends as expected")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := g.logger(stderr)
	if err != nil {
		return &cmdError{code: exitUsage, err: err}
	}
	log = log.Level(max(log.GetLevel(), zerolog.WarnLevel))
	open := func(ctx context.Context, path string) (store.Store, error) {
		return app.OpenStore(ctx, &config.Config{Store: config.Store{Path: path}}, log)
	}
	return demo.Run(ctx, demo.Options{Auto: *auto, In: stdin, Out: stdout, OpenStore: open, Log: log})
}

func cmdServe(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs, g := newFlags("serve", "", "Runs the Slack bot: Socket Mode or HTTP per the configuration,\nresumes unfinished runs, and keeps the maintenance windows.", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	e, err := setup(ctx, g, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	return e.Serve(ctx, buildinfo.Get().String())
}

// operator is the person at this terminal, for the dispatcher.
func operator(prefix string) bot.Caller {
	who := "terminal"
	if u, err := user.Current(); err == nil {
		who = "terminal:" + u.Username
	}
	return bot.Caller{User: who, Via: bot.ViaTerminal, Prefix: prefix}
}

// dispatch is the common part of the commands that are words of the
// command language: flags, nocobot built from the configuration, one
// call to the dispatcher (access-checked and audited as in Slack), and
// the reply printed.
func dispatch(ctx context.Context, name, usage, help string, args []string, stdout, stderr io.Writer,
	call func(ctx context.Context, d *bot.Dispatcher, who bot.Caller, pos []string) (bot.Reply, error)) error {
	fs, g := newFlags(name, usage, help, stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	e, err := setup(ctx, g, stderr)
	if err != nil {
		return err
	}
	defer e.Close()
	r, err := call(ctx, e.Dispatcher, operator("nocobot"), pos)
	if err != nil {
		return err
	}
	if r.Outcome.Kind != bot.OK {
		return errors.New(r.Plain())
	}
	if !r.Quiet() {
		fmt.Fprintln(stdout, r.Plain())
	}
	return nil
}

func cmdStatus(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	return dispatch(ctx, "status", "[cluster]", "Shows a cluster's nodes, load balancer, running run, latest backup and next windows.", args, stdout, stderr,
		func(ctx context.Context, d *bot.Dispatcher, who bot.Caller, pos []string) (bot.Reply, error) {
			if len(pos) > 1 {
				return bot.Reply{}, usageErr("too many arguments")
			}
			cmd := bot.Command{Name: "status"}
			if len(pos) == 1 {
				cmd.Cluster = pos[0]
			}
			return d.Do(ctx, who, cmd, strings.TrimSpace("nocobot status "+cmd.Cluster)), nil
		})
}

func cmdDecide(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	return dispatch(ctx, "decide", "<run> continue|rollback|abort|retry|done", "Answers a run's open question, as its buttons in Slack do; the process driving\nthe run acts on it.", args, stdout, stderr,
		func(ctx context.Context, d *bot.Dispatcher, who bot.Caller, pos []string) (bot.Reply, error) {
			if len(pos) != 2 {
				return bot.Reply{}, usageErr("expected: nocobot decide <run> continue|rollback|abort|retry|done")
			}
			action := store.Action(strings.ToLower(pos[1]))
			switch action {
			case "done":
				action = store.ActionContinue
			case store.ActionContinue, store.ActionRollback, store.ActionAbort, store.ActionRetry:
			default:
				return bot.Reply{}, usageErr("%q: expected continue, rollback, abort, retry or done", pos[1])
			}
			r := d.Decide(ctx, who, bot.Answer{RunID: pos[0], Action: action, Said: "nocobot decide " + pos[0] + " " + pos[1]})
			if r.Outcome.Kind == bot.OK && r.Decision != nil {
				r.Text = bot.T(fmt.Sprintf("Recorded: %s on run %s (%s). The process driving the run acts on it; a run that no process drives goes on with the next nocobot serve on this store.", bot.ActionLabel(r.Decision.Action), r.Decision.RunID, r.Decision.Checkpoint))
			}
			return r, nil
		})
}

func cmdCancel(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	return dispatch(ctx, "cancel", "<run>", "Aborts a run: the current step ends safely, then the run stops.", args, stdout, stderr,
		func(ctx context.Context, d *bot.Dispatcher, who bot.Caller, pos []string) (bot.Reply, error) {
			if len(pos) != 1 {
				return bot.Reply{}, usageErr("which run? give its id, e.g. nocobot cancel r1122-7fq3")
			}
			return d.Do(ctx, who, bot.Command{Name: "cancel", RunID: pos[0]}, "nocobot cancel "+pos[0]), nil
		})
}
