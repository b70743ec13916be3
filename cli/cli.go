// Package cli is the nocobot command line: its flags, subcommands and
// their output. Package main only calls Run.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/store"
)

const usageHead = `nocobot runs NocoBase cluster maintenance from Slack or a terminal.

Usage: nocobot [global flags] <command> [args]

Commands:
`

const usageTail = `
Global flags (before or after the command): --config FILE (default $NOCOBOT_CONFIG,
else ./nocobot.yaml), --log-format auto|console|json (auto: console at a terminal, else JSON; logs go to stderr),
--log-level debug|info|warn|error (default: info for serve, warn otherwise).

At a terminal you are your OS user: access.terminal_users maps it to the Slack
user id the access rules name, or access.trust_terminal: true lets every
operator pass them. Otherwise the terminal is allowed nothing.

Durations take s, m, h, d (24 h) and w (7 d): 90s, 2h30m, 1d, 2w.
--json prints stable keys (docs/cli.md lists them).

Exit codes, the same in every command:
  0  done
  1  error, or refused (access, a busy cluster, a failed check)
  2  usage: a mistake in the command's words or flags
  3  the run was rolled back
  4  the run was aborted
  5  the run was left unfinished (nocobot attach <run> continues it)
  6  not found: no such cluster, run or window
`

// usage is the help text: the commands from their table (the language's
// from bot's), the procedures from their registry.
func usage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands() {
		line := strings.TrimSpace(c.name + " " + c.args)
		if len(line) < usageColumn {
			fmt.Fprintf(&b, "  %-*s%s\n", usageColumn, line, c.help)
		} else {
			fmt.Fprintf(&b, "  %s   %s\n", line, c.help)
		}
		if c.more != "" {
			fmt.Fprintf(&b, "  %*s%s\n", usageColumn, "", c.more)
		}
	}
	b.WriteString("\nProcedures (the same words as in Slack):\n")
	for _, c := range bot.Commands() {
		if c.Procedure {
			fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(c.Name+" "+c.Args))
		}
	}
	b.WriteString(usageTail)
	return b.String()
}

// usageColumn is where the commands' help starts in the usage.
const usageColumn = 28

// exit codes
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitRolledBack = 3
	exitAborted    = 4
	exitLeft       = 5
	exitNotFound   = 6
)

// env is what every subcommand is given.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// usage is the command's usage line, printed after a usage error.
	usage string
	// interrupts delivers Ctrl-C to the commands that follow a run;
	// for the others Ctrl-C cancels their context.
	interrupts <-chan struct{}
}

// command is a subcommand: its words and help for the usage, and what
// runs it.
type command struct {
	name, args, help string
	// more is a second line of help in the usage.
	more string
	fn   func(ctx context.Context, e *env, args []string) error
	// follows: Ctrl-C is a question to the command, not the end of it.
	follows bool
}

// commands lists the subcommands in the usage's order: the terminal's
// own, the language's (from bot's command table), then the rest.
func commands() []command {
	cs := []command{
		{name: "serve", help: "run the Slack bot (and the maintenance windows)", fn: cmdServe},
		{name: "run", args: "<procedure> [args]", help: "run a procedure here, answering checkpoints at the prompt",
			more: "(--dry-run prints the plan; --on-interrupt abort|leave without a terminal)", fn: cmdRun, follows: true},
		{name: "plan", args: "<procedure> [args]", help: "print the steps a run would take; needs no secrets, changes nothing (--json)", fn: cmdPlan},
		{name: "attach", args: "<run>", help: "follow a run and answer its checkpoints here; drives it if no process does", fn: cmdAttach, follows: true},
		{name: "shell", help: "an interactive prompt for the words of /nocobase, with line editing", fn: cmdShell, follows: true},
	}
	cs = append(cs, languageCommands()...)
	return append(cs, []command{
		{name: "config", args: "check [--connect]", help: "validate the configuration file (--connect: and ask each outside system)", fn: cmdConfig},
		{name: "demo", args: "[--auto]", help: "a minute of nocobot on a simulated cluster, nothing to install", fn: cmdDemo, follows: true},
		{name: "version", help: "the version and commit (also --version, -v)", fn: cmdVersion},
		{name: "help", args: "[command]", help: "this help, or a command's (also -h or --help, after any command too)"},
	}...)
}

// lookup finds a subcommand that runs.
func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name && c.fn != nil {
			return c, true
		}
	}
	return command{}, false
}

// cmdError is a one-line error with an exit code; a nil err prints nothing.
type cmdError struct {
	code int
	err  error
	// usage, when set, is printed on the line after the error.
	usage string
}

func (e *cmdError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func usageErr(format string, a ...any) error {
	return &cmdError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// notFound is err (an unknown cluster, run or window) with its exit code.
func notFound(err error) error {
	return &cmdError{code: exitNotFound, err: err}
}

// topUsage follows an error that is not about one command.
const topUsage = "Usage: nocobot [global flags] <command> [args] (nocobot help lists the commands)"

// Run runs the nocobot command line and returns its exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-v") {
		args = append([]string{"version"}, args[1:]...)
	}
	pre, args, err := leadingGlobals(args)
	if err != nil {
		fmt.Fprintf(stderr, "nocobot: %v\n%s\n", err, topUsage)
		return exitUsage
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return help(args, stdout, stderr)
	}
	cmd, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "nocobot: unknown command %q\n%s\n", args[0], topUsage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ints := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigs:
				if !cmd.follows {
					cancel()
					continue
				}
				select {
				case ints <- struct{}{}:
				default:
				}
			}
		}
	}()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, interrupts: ints}
	err = cmd.fn(ctx, e, append(pre, args[1:]...))
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitError
	var ce *cmdError
	switch {
	case errors.As(err, &ce):
		code = ce.code
		if ce.err == nil {
			return code
		}
	case errors.Is(err, store.ErrNotFound):
		code = exitNotFound
	}
	// The error on one line (the first line of the message); after a
	// usage error, the command's usage on the next.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	fmt.Fprintf(stderr, "nocobot %s: %s\n", args[0], msg)
	switch {
	case ce != nil && ce.usage != "":
		fmt.Fprintf(stderr, "Usage: %s\n", ce.usage)
	case code == exitUsage && e.usage != "":
		fmt.Fprintf(stderr, "Usage: %s (nocobot %s --help says more)\n", e.usage, args[0])
	}
	return code
}

// help prints the usage, or a command's ("nocobot help run").
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) >= 2 && args[0] == "help" && args[1] != "-h" && args[1] != "--help" && args[1] != "help" {
		if cmd, ok := lookup(args[1]); ok {
			e := &env{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr}
			_ = cmd.fn(context.Background(), e, []string{"--help"})
			return exitOK
		}
		fmt.Fprintf(stderr, "nocobot help: unknown command %q\n%s\n", args[1], topUsage)
		return exitUsage
	}
	fmt.Fprint(stdout, usage())
	return exitOK
}

// leadingGlobals takes the global flags written before the command
// ("nocobot --config x plan start"), to pass them on after it.
func leadingGlobals(args []string) (pre, rest []string, err error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		name, _, hasVal := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !globalFlag(name) {
			return nil, nil, fmt.Errorf("unknown flag %s before the command", args[0])
		}
		if hasVal {
			pre, args = append(pre, args[0]), args[1:]
			continue
		}
		if len(args) < 2 {
			return nil, nil, fmt.Errorf("flag %s needs a value", args[0])
		}
		pre, args = append(pre, args[0], args[1]), args[2:]
	}
	return pre, args, nil
}
