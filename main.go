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

	"github.com/nocobot/nocobot/bot"
	slackfront "github.com/nocobot/nocobot/bot/slack"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/demo"
	"github.com/nocobot/nocobot/internal/buildinfo"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

const usage = `nocobot runs NocoBase cluster maintenance from Slack or a terminal.

Usage:
  nocobot serve                       run the Slack bot (and the maintenance windows)
  nocobot run <procedure> [args]      run a procedure here, answering checkpoints at the prompt
  nocobot plan <procedure> [args]     print the steps a run would take; changes nothing
  nocobot history [n]                 past runs with outcome and duration
  nocobot backups [cluster]           backups with age, size and version
  nocobot audit [--since 24h] [--run id] [-n 50]   the audit log
  nocobot config check                validate the configuration file
  nocobot demo [--auto]               a minute of nocobot on a simulated cluster, nothing to install
  nocobot version

Procedures (same words as in Slack):
  upgrade <version> [cluster]
  maintain [cluster] [plugin enable|disable|add <package>]… [backup] [restore <backup-id>]
  start [cluster]

Every command takes --config FILE (default ./nocobot.yaml), --log-format json|console
and --log-level debug|info|warn|error; every command has --help.
`

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
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmds := map[string]func(context.Context, []string, io.Reader, io.Writer, io.Writer) error{
		"serve": cmdServe, "run": cmdRun, "plan": cmdPlan, "history": cmdHistory, "backups": cmdBackups,
		"audit": cmdAudit, "config": cmdConfig, "version": cmdVersion, "demo": cmdDemo,
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

// env is what most commands need: configuration, logger, store, engine.
type env struct {
	cfg    *config.Config
	log    zerolog.Logger
	store  store.Store
	engine *procedures.Engine
	close  func()
}

func setup(ctx context.Context, g *globals, stderr io.Writer, needEngine bool) (*env, error) {
	log, err := g.logger(stderr)
	if err != nil {
		return nil, &cmdError{code: exitUsage, err: err}
	}
	cfg, err := config.Load(g.config)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, log: log, store: st, close: func() { st.Close() }}
	if !needEngine {
		return e, nil
	}
	clusters, closeClusters, err := buildClusters(cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: clusters, Log: log})
	if err != nil {
		closeClusters()
		st.Close()
		return nil, err
	}
	e.engine = eng
	e.close = func() { closeClusters(); st.Close() }
	return e, nil
}

// resolveCluster fills in the cluster when the configuration has only one.
func resolveCluster(cfg *config.Config, name string) (string, error) {
	if name != "" {
		if _, ok := cfg.Cluster(name); !ok {
			return "", fmt.Errorf("unknown cluster %q (known: %s)", name, clusterNames(cfg))
		}
		return name, nil
	}
	if len(cfg.Clusters) == 1 {
		return cfg.Clusters[0].Name, nil
	}
	return "", fmt.Errorf("which cluster? name one of: %s", clusterNames(cfg))
}

func clusterNames(cfg *config.Config) string {
	var names []string
	for _, c := range cfg.Clusters {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// procedureCommand parses "upgrade 1.7.14 prod" with the shared parser.
func procedureCommand(cfg *config.Config, words []string) (bot.Command, error) {
	if len(words) == 0 {
		return bot.Command{}, usageErr("which procedure? upgrade, maintain or start")
	}
	cmd, err := bot.Parse("nocobot run", quoteWords(words))
	if err != nil {
		return bot.Command{}, &cmdError{code: exitUsage, err: err}
	}
	if !cmd.IsProcedure() {
		return bot.Command{}, usageErr("%q is not a procedure: upgrade, maintain or start", words[0])
	}
	cmd.Cluster, err = resolveCluster(cfg, cmd.Cluster)
	if err != nil {
		return bot.Command{}, &cmdError{code: exitUsage, err: err}
	}
	return cmd, nil
}

func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if strings.ContainsAny(w, " \t\"") {
			w = "'" + w + "'"
		}
		q[i] = w
	}
	return strings.Join(q, " ")
}

func cmdRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e, cmd, pos, err := setupProcedure(ctx, "run", "Runs a procedure at this terminal: each step is printed as it starts and ends,\nand every checkpoint asks here (continue / rollback / abort).", args, stderr)
	if err != nil {
		return err
	}
	defer e.close()
	if cmd.DryRun {
		return printPlan(ctx, e, cmd, stdout)
	}
	who := "terminal"
	if u, err := user.Current(); err == nil {
		who = "terminal:" + u.Username
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.engine.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	_ = e.store.AppendAudit(ctx, store.AuditEntry{At: time.Now(), User: who, Via: "terminal", Action: "run " + strings.Join(pos, " "), Outcome: "ok"})
	end, err := terminal.New(e.engine, stdin, stdout, who).Run(ctx, cmd.Request(who, "terminal"))
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

func printPlan(ctx context.Context, e *env, cmd bot.Command, stdout io.Writer) error {
	p, err := e.engine.Plan(ctx, cmd.Request("plan", "terminal"))
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
	defer e.close()
	return printPlan(ctx, e, cmd, stdout)
}

// setupProcedure is the common start of run and plan: flags, the engine,
// and the procedure named by the arguments. The caller closes e.
func setupProcedure(ctx context.Context, name, help string, args []string, stderr io.Writer) (*env, bot.Command, []string, error) {
	fs, g := newFlags(name, "<procedure> [args]", help, stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, bot.Command{}, nil, err
	}
	e, err := setup(ctx, g, stderr, true)
	if err != nil {
		return nil, bot.Command{}, nil, err
	}
	cmd, err := procedureCommand(e.cfg, pos)
	if err != nil {
		e.close()
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
	e, err := setup(ctx, g, stderr, false)
	if err != nil {
		return err
	}
	defer e.close()
	runs, err := e.store.ListRuns(ctx, *cluster, n)
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
			down = d.Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Local().Format("2006-01-02 15:04"), procedures.Title(r),
			r.Requester, r.State, procedures.Duration(r, time.Now()).Round(time.Second), down)
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
	e, err := setup(ctx, g, stderr, true)
	if err != nil {
		return err
	}
	defer e.close()
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	if name, err = resolveCluster(e.cfg, name); err != nil {
		return &cmdError{code: exitUsage, err: err}
	}
	c, _ := e.engine.Cluster(name)
	list, err := c.Backups.List(ctx)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, time.Since(b.Created).Round(time.Minute), humanSize(b.Size), b.Version, b.Image, b.RunID)
	}
	return tw.Flush()
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
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
	e, err := setup(ctx, g, stderr, false)
	if err != nil {
		return err
	}
	defer e.close()
	q := store.AuditQuery{RunID: *runID, Limit: *n}
	if *since > 0 {
		q.Since = time.Now().Add(-*since)
	}
	entries, err := e.store.Audit(ctx, q)
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
	fs, g := newFlags("config check", "", "Validates the configuration file: one clear error naming the field, or OK.", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "check" {
		return usageErr("expected: nocobot config check [--config FILE]")
	}
	cfg, err := config.Load(g.config)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: OK (%d clusters: %s)\n", g.config, len(cfg.Clusters), clusterNames(cfg))
	return nil
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
		return openStore(ctx, &config.Config{Store: config.Store{Path: path}}, log)
	}
	return demo.Run(ctx, demo.Options{Auto: *auto, In: stdin, Out: stdout, OpenStore: open, Log: log})
}

func cmdServe(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	fs, g := newFlags("serve", "", "Runs the Slack bot: Socket Mode or HTTP per the configuration,\nresumes unfinished runs, and keeps the maintenance windows.", stderr)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	e, err := setup(ctx, g, stderr, true)
	if err != nil {
		return err
	}
	defer e.close()
	sc := e.cfg.Slack
	botToken, err := config.Secret("slack.bot_token_env", sc.BotTokenEnv)
	if err != nil {
		return err
	}
	if botToken == "" {
		return errors.New("slack.bot_token_env: required to serve (the variable holding the xoxb- token)")
	}
	appToken, err := config.Secret("slack.app_token_env", sc.AppTokenEnv)
	if err != nil {
		return err
	}
	signing, err := config.Secret("slack.signing_secret_env", sc.SigningSecretEnv)
	if err != nil {
		return err
	}
	sched, err := newScheduler(e)
	if err != nil {
		return err
	}
	front, err := slackfront.New(slackfront.Options{Config: e.cfg, BotToken: botToken, AppToken: appToken, SigningSecret: signing}, e.engine, sched, e.log)
	if err != nil {
		return err
	}
	e.log.Info().Str("version", buildinfo.Get().Version).Str("commit", buildinfo.Get().Commit).Str("mode", sc.Mode).Strs("clusters", e.engine.ClusterNames()).Msg("nocobot serving")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	go func() { errs <- e.engine.Run(ctx) }()
	go func() { errs <- front.Run(ctx) }()
	if sched != nil {
		go func() { errs <- sched.Run(ctx) }()
	}
	go pruneAudit(ctx, e)
	var first error
	n := 2
	if sched != nil {
		n = 3
	}
	for range n {
		if err := <-errs; err != nil && first == nil && ctx.Err() == nil {
			first = err
			cancel()
		}
	}
	return first
}

// pruneAudit keeps the audit log within its retention, once a day.
func pruneAudit(ctx context.Context, e *env) {
	for {
		c, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := e.store.PruneAudit(c, time.Now().Add(-e.cfg.Audit.Retention.D()))
		cancel()
		if err != nil && ctx.Err() == nil {
			e.log.Warn().Err(err).Msg("could not prune the audit log")
		} else if n > 0 {
			e.log.Info().Int("entries", n).Msg("pruned the audit log")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(24 * time.Hour):
		}
	}
}
