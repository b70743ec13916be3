package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/store"
)

// globals are the flags every subcommand accepts.
type globals struct {
	config, logFormat, logLevel string
	defaultLevel                string
	// json: print data, not words (the command's own --json).
	json bool
}

func globalFlag(name string) bool {
	return name == "config" || name == "log-format" || name == "log-level"
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.config, "config", defaultConfig(), "configuration `file` (default: $NOCOBOT_CONFIG, else nocobot.yaml)")
	fs.StringVar(&g.logFormat, "log-format", "auto", "log `format`: auto (console at a terminal, else json), console or json")
	fs.StringVar(&g.logLevel, "log-level", "", "log `level`: debug, info, warn or error (default: info for serve, warn otherwise)")
}

// configEnv names the configuration file when --config does not: the
// image sets it, so "docker compose exec nocobot nocobot status" finds
// the file whatever the working directory.
const configEnv = "NOCOBOT_CONFIG"

func defaultConfig() string {
	if p := os.Getenv(configEnv); p != "" {
		return p
	}
	return "nocobot.yaml"
}

// isTerminal reports whether w (or r) is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// logger writes to stderr: for people at a terminal (console form,
// colours only there), JSON otherwise or when asked.
func (g *globals) logger(stderr io.Writer) (zerolog.Logger, error) {
	level := g.logLevel
	if level == "" {
		level = g.defaultLevel
	}
	if level == "" {
		level = "warn"
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: expected debug, info, warn or error", g.logLevel)
	}
	tty := isTerminal(stderr)
	var w io.Writer = stderr
	switch g.logFormat {
	case "json":
	case "auto":
		if tty {
			w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
		}
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339, NoColor: !tty}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: expected auto, console or json", g.logFormat)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// newFlags makes a subcommand's flag set. Errors are returned, not
// printed: Run prints one line. --help prints the usage to stdout.
func newFlags(e *env, name, args, help string) (*flag.FlagSet, *globals) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g := &globals{}
	g.register(fs)
	e.usage = strings.TrimSpace("nocobot " + name + " " + args)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: %s\n%s\n\nFlags:\n", e.usage, help)
		printFlags(e.stdout, fs)
		fmt.Fprintf(e.stdout, "\nExit codes: 0 done, 1 error or refused, 2 usage, 3 rolled back, 4 aborted,\n5 left unfinished, 6 not found (nocobot help explains them).\n")
	}
	return fs, g
}

// printFlags lists the flags as they are typed: --name VALUE.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  " + flagName(f.Name)
		if name != "" {
			line += " " + strings.ToUpper(name)
		}
		fmt.Fprintf(w, "%s\n      %s", line, strings.ReplaceAll(usage, "\n", "\n      "))
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool && f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.Name != "config" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// flagValueErr words the flag package's "parse error" for a person.
func flagValueErr(fl *flag.Flag, err error) string {
	switch err.Error() {
	case "parse error", "value out of range":
		if _, isBool := fl.Value.(interface{ IsBoolFlag() bool }); isBool {
			return "expected true or false"
		}
		return "expected a whole number, e.g. " + fl.DefValue
	}
	return err.Error()
}

// flagName is a flag as it is typed: --name, or -n for one letter.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// durationFlag is a flag.Value of a duration with days and weeks (1d, 2w).
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := format.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("%q is negative: expected e.g. 24h, 1d or 2w", s)
	}
	*f.d = d
	return nil
}

// durationVar defines a duration flag that takes days and weeks.
func durationVar(fs *flag.FlagSet, name, usage string) *time.Duration {
	d := new(time.Duration)
	fs.Var(durationFlag{d}, name, usage)
	return d
}

// parseArgs reads flags before and after positional arguments. With
// passUnknown, flags the set does not know are kept as words (a
// procedure's own, such as --dry-run). "help" alone prints the usage.
func parseArgs(fs *flag.FlagSet, args []string, passUnknown bool) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			fs.Usage()
			return nil, flag.ErrHelp
		}
		fl := fs.Lookup(name)
		if fl == nil {
			if passUnknown {
				pos = append(pos, a)
				continue
			}
			return nil, usageErr("unknown flag %s", a)
		}
		if bf, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() && !hasVal {
			val, hasVal = "true", true
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, usageErr("flag %s needs a value", a)
			}
			i++
			val = args[i]
		}
		if err := fs.Set(name, val); err != nil {
			return nil, usageErr("%s %s: %s", flagName(name), val, flagValueErr(fl, err))
		}
	}
	if len(pos) == 1 && pos[0] == "help" {
		fs.Usage()
		return nil, flag.ErrHelp
	}
	return pos, nil
}

// load reads the configuration and makes the logger.
func load(g *globals, stderr io.Writer) (*config.Config, zerolog.Logger, error) {
	log, err := g.logger(stderr)
	if err != nil {
		return nil, log, &cmdError{code: exitUsage, err: err}
	}
	cfg, err := config.Load(g.config)
	return cfg, log, err
}

// setup loads the configuration and builds nocobot from it (the caller
// closes it).
func setup(ctx context.Context, g *globals, e *env) (*app.App, error) {
	cfg, log, err := load(g, e.stderr)
	if err != nil {
		return nil, err
	}
	return app.New(ctx, cfg, log)
}

// operator is the person at this terminal for the access rules: their
// OS user, as access.terminal_users maps it to a user id, else
// "terminal:<name>" (whom no rule names unless access.trust_terminal).
func operator(cfg *config.Config) bot.Caller {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	c := bot.Caller{User: "terminal:" + name, Via: bot.ViaTerminal, Prefix: "nocobot"}
	if id, ok := cfg.Access.TerminalUsers[name]; ok && id != "" {
		c.User, c.Name = id, name+" (terminal)"
	}
	return c
}

// replyErr turns a refusal or failure into the command's error: a
// mistake in the words is a usage error.
func replyErr(r bot.Reply) error {
	var ue *bot.UsageError
	code := exitError
	switch {
	case errors.As(r.Err, &ue):
		code = exitUsage
	case errors.Is(r.Err, store.ErrNotFound):
		code = exitNotFound
	}
	// One line: the reply's lines joined (a refusal's reason, then what
	// to do); its usage, if it gives one, on the next.
	var said, usage []string
	for l := range strings.SplitSeq(cleanReply(r), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "Usage:") && usage == nil {
			usage = strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "Usage:"))
			continue
		}
		said = append(said, strings.Fields(l)...)
	}
	return &cmdError{code: code, err: errors.New(strings.Join(said, " ")), usage: strings.Join(usage, " ")}
}

// fdOf is the file descriptor of a terminal checked with isTerminal.
func fdOf(f any) int { return int(f.(*os.File).Fd()) }
