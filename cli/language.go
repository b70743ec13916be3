package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// The commands of the language (status, decide, cancel, history, …) are
// subcommands made from bot's command table: its words, usage and help,
// its options as flags. They run through the dispatcher, as in a chat:
// the same parser, access rules, audit entry and reply; a mistake in the
// words is refused and audited too.

// languageCommands are the subcommands made from the command table.
func languageCommands() []command {
	var out []command
	for _, c := range bot.Commands() {
		if c.Procedure || c.Name == "help" {
			continue
		}
		brief := c.Brief
		if c.Data {
			brief += " [--json]"
		}
		out = append(out, command{name: c.Name, args: brief, help: c.Help + listed[c.Name], fn: func(ctx context.Context, e *env, args []string) error {
			return word(ctx, e, c, args)
		}})
	}
	return out
}

// listed is what the usage's line of a subcommand adds to the table's help.
var listed = map[string]string{"cancel": "; drives the abort if no process does"}

// more is what a subcommand's --help adds to the table's help.
var more = map[string]string{
	"cancel": " When no\nprocess drives the run, this one takes it and drives the abort to its end.",
	"audit":  " Control characters are shown escaped and long\ntext is cut (--json keeps it whole, one object a line).",
}

// word runs a command of the table through the dispatcher. With the
// command's data, --json prints it (see json.go) instead of words.
func word(ctx context.Context, e *env, c bot.CommandHelp, argv []string) error {
	args := c.Args
	if c.Data {
		args += " [--json]"
	}
	if c.Name == "schedule" {
		args = strings.Replace(c.Args, "| list |", "| list [--json] |", 1)
	}
	fs, g := newFlags(e, c.Name, args, c.More+more[c.Name])
	opts := map[string]*string{}
	for _, o := range c.Options {
		opts[o.Name] = fs.String(o.Name, o.Default, o.Help)
	}
	var asJSON *bool
	switch {
	case c.Data && c.Name == "schedule":
		asJSON = new(bool)
	case c.Data:
		asJSON = fs.Bool("json", false, "print JSON (keys: docs/cli.md)")
	}
	pos, err := parseArgs(fs, argv, c.Name == "schedule")
	if err != nil {
		return err
	}
	if c.Name == "schedule" {
		// schedule passes unknown flags on to the window's procedure:
		// --json is schedule list's own only.
		if i := slices.Index(pos, "--json"); i > 0 && pos[0] == "list" {
			*asJSON = true
			pos = slices.Delete(pos, i, i+1)
		}
	}
	words := append([]string{c.Name}, pos...)
	said := "nocobot " + strings.Join(words, " ")
	// The options given go to the table's parser as the words it reads.
	fs.Visit(func(f *flag.Flag) {
		if _, ok := opts[f.Name]; ok {
			words = append(words, bot.Option{Name: f.Name}.Flag(), f.Value.String())
			if f.Name == "run" || f.Name == "cluster" {
				said += " " + bot.Option{Name: f.Name}.Flag() + " " + f.Value.String()
			}
		}
	})
	var r bot.Reply
	var a *app.App
	if c.Records {
		// Only the store: no clusters, no secrets besides the store's own.
		cfg, log, err := load(g, e.stderr)
		if err != nil {
			return err
		}
		rec, err := app.NewRecords(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer rec.Close()
		r = rec.Dispatcher.CommandWords(ctx, operator(cfg), words, said)
	} else {
		if a, err = setup(ctx, g, e); err != nil {
			return err
		}
		defer a.Close()
		r = a.Dispatcher.CommandWords(ctx, operator(a.Config), words, said)
	}
	if c.Name == "cancel" {
		return cancelled(ctx, e, a, r)
	}
	if r.Outcome.Kind != bot.OK {
		return replyErr(r)
	}
	if asJSON != nil && *asJSON {
		return printData(e, r.Data)
	}
	switch d := r.Data.(type) {
	case []store.Run:
		return printRuns(e, d)
	case []store.AuditEntry:
		return printAudit(e, d)
	}
	return printReply(e, r)
}

// cancelled follows a cancel's reply: the abort is recorded (now or
// before); this process drives it when none does.
func cancelled(ctx context.Context, e *env, a *app.App, r bot.Reply) error {
	switch {
	case r.Outcome.Kind == bot.OK:
		fmt.Fprintln(e.stdout, cleanReply(r))
	case errors.Is(r.Err, store.ErrAlreadyDecided):
		// Asked before, maybe when nothing drove the run: make it happen.
		fmt.Fprintf(e.stdout, "An abort of run %s was requested already.\n", r.RunID)
	default:
		return replyErr(r)
	}
	return driveAbort(ctx, e, a, r.RunID)
}

func cleanReply(r bot.Reply) string { return terminal.Clean(r.Plain()) }

// printReply prints an accepted reply, or returns the refusal as the
// command's error.
func printReply(e *env, r bot.Reply) error {
	if r.Outcome.Kind != bot.OK {
		return replyErr(r)
	}
	switch {
	case !r.Quiet():
		fmt.Fprintln(e.stdout, cleanReply(r))
	case !r.Announce.Empty():
		fmt.Fprintln(e.stdout, terminal.Clean(r.Announce.Plain()))
	}
	return nil
}

// printData prints a reply's data as JSON.
func printData(e *env, data any) error {
	now := time.Now()
	switch d := data.(type) {
	case procedures.ClusterStatus:
		return writeJSON(e.stdout, statusJSON(d, now))
	case []ports.BackupInfo:
		out := make([]jsonBackup, 0, len(d))
		for _, b := range d {
			out = append(out, backupJSON(b, now))
		}
		return writeJSON(e.stdout, out)
	case []store.Window:
		return writeJSON(e.stdout, windowsJSON(d))
	case []store.Run:
		out := make([]jsonRun, 0, len(d))
		for _, r := range d {
			out = append(out, runJSON(r, now))
		}
		return writeJSON(e.stdout, out)
	case []store.AuditEntry:
		return printAuditJSON(e, d)
	}
	return fmt.Errorf("--json: this command has no data to print (%T)", data)
}
