package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

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

// word runs a word of the command language (status, cancel, traffic,
// schedule, backups) through the dispatcher, as Slack does: the same
// parser, access rules, audit entry and reply. A mistake in the words is
// refused and audited too.
//
// With withJSON, --json prints the reply's data (see json.go) instead.
func word(ctx context.Context, e *env, name, args, help string, argv []string, withJSON bool) error {
	fs, g := newFlags(e, name, args, help)
	var asJSON *bool
	switch {
	case withJSON && name == "schedule":
		asJSON = new(bool)
	case withJSON:
		asJSON = fs.Bool("json", false, "print JSON (keys: docs/cli.md)")
	}
	pos, err := parseArgs(fs, argv, name == "schedule")
	if err != nil {
		return err
	}
	if name == "schedule" && asJSON != nil {
		// schedule passes unknown flags on to the window's procedure:
		// --json is schedule list's own only.
		if i := slices.Index(pos, "--json"); i > 0 && pos[0] == "list" {
			*asJSON = true
			pos = slices.Delete(pos, i, i+1)
		}
	}
	a, err := setup(ctx, g, e)
	if err != nil {
		return err
	}
	defer a.Close()
	who := operator(a.Config)
	words := append([]string{name}, pos...)
	said := "nocobot " + strings.Join(words, " ")
	cmd, perr := bot.ParseWords(who.Prefix, words)
	if perr != nil {
		r := a.Dispatcher.Refuse(ctx, who, said, perr.Error())
		r.Err = perr
		return replyErr(r)
	}
	r := a.Dispatcher.Do(ctx, who, cmd, said)
	if asJSON == nil || !*asJSON || r.Outcome.Kind != bot.OK {
		return printReply(e, r)
	}
	return printData(e, r.Data)
}

// printData prints a listing's data as JSON.
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
	}
	return fmt.Errorf("--json: this command has no data to print (%T)", data)
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	return word(ctx, e, "status", "[cluster] [--json]", "Shows a cluster's nodes, load balancer, running run, latest backup and next windows.", args, true)
}

func cmdCancel(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "cancel", "<run>", "Aborts a run: the current step ends safely, then the run stops. When no\nprocess drives the run, this one takes it and drives the abort to its end.")
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	a, err := setup(ctx, g, e)
	if err != nil {
		return err
	}
	defer a.Close()
	who := operator(a.Config)
	words := append([]string{"cancel"}, pos...)
	said := "nocobot " + strings.Join(words, " ")
	cmd, perr := bot.ParseWords(who.Prefix, words)
	if perr != nil {
		r := a.Dispatcher.Refuse(ctx, who, said, perr.Error())
		r.Err = perr
		return replyErr(r)
	}
	rep := a.Dispatcher.Do(ctx, who, cmd, said)
	switch {
	case rep.Outcome.Kind == bot.OK:
		fmt.Fprintln(e.stdout, cleanReply(rep))
	case errors.Is(rep.Err, store.ErrAlreadyDecided):
		// Asked before, maybe when nothing drove the run: make it happen.
		fmt.Fprintf(e.stdout, "An abort of run %s was requested already.\n", cmd.RunID)
	default:
		return replyErr(rep)
	}
	return driveAbort(ctx, e, a, cmd.RunID)
}

func cmdTraffic(ctx context.Context, e *env, args []string) error {
	return word(ctx, e, "traffic", "on|off [cluster]", "Switches the load balancer by hand, as a run would, and checks the switch:\non sends traffic to the app nodes, off to the maintenance page. Refused while\na run holds the cluster, unless it stopped at a failure.", args, false)
}

func cmdSchedule(ctx context.Context, e *env, args []string) error {
	return word(ctx, e, "schedule", `add "<cron>" <procedure> [args] [--tz Zone] [--duration 2h] [--announce 30m] [--approval required|none] | list [--json] | remove <id> | pause <id> | resume <id> | skip <id>`,
		"Maintenance windows, as in Slack (skip: the next start only). Durations take\ns, m, h, d and w (1d, 2w).", args, true)
}

func cmdBackups(ctx context.Context, e *env, args []string) error {
	return word(ctx, e, "backups", "[cluster] [--json]", "Lists a cluster's backups, newest first, with age, size and version.", args, true)
}

func cmdDecide(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "decide", "<run> continue|rollback|abort|retry|done", "Answers a run's open question, as its buttons in Slack do; the process driving\nthe run acts on it.")
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	a, err := setup(ctx, g, e)
	if err != nil {
		return err
	}
	defer a.Close()
	return printReply(e, terminal.Decide(ctx, a.Dispatcher, operator(a.Config), pos))
}
