package bot

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// commandDef is one command of the language, as atlantis registers one
// runner per command: its words, how they are read and how the
// dispatcher runs them. Every help text (a chat's help reply, a
// terminal's, the command line's usage and its subcommands) comes from
// the table of these.
type commandDef struct {
	name string
	args string // the words after the name, for usage lines
	// brief is args shortened for a list of commands ("" : args).
	brief string
	help  string // one line, for every help text
	// more is a terminal's longer help ("": help).
	more string
	// options are the "--name value" words parse reads, for fronts that
	// offer them as flags (the command line).
	options []Option
	// terminal: only at a terminal. A chat answers questions with its
	// buttons, and the audit log is read where the store is.
	terminal bool
	// cluster: the command is about one cluster, resolved before run
	// (the one named, the channel's, or the only one).
	cluster bool
	// data: the reply carries data a front may print as it is (--json).
	data bool
	// records: it reads only the store's records (runs, the audit log),
	// so a dispatcher without clusters (and their secrets) runs it.
	records bool
	// procedure: one of the procedures' registry; it starts a run, or
	// with --dry-run shows its plan.
	procedure bool
	parse     func(c *Command, args []string) error
	run       func(d *Dispatcher, ctx context.Context, who Caller, cmd Command) Reply
}

// Option is a "--name value" word of a command.
type Option struct {
	Name    string // "since", "n"
	Default string // "" : none
	// Help says what it does; a `word` in back quotes names its value.
	Help string
}

// Flag is the option as typed: --name, or -n for one letter.
func (o Option) Flag() string {
	if len(o.Name) == 1 {
		return "-" + o.Name
	}
	return "--" + o.Name
}

// historyDefault is how many runs history lists unless told.
const historyDefault = 20

// auditDefault is how many entries audit prints unless told.
const auditDefault = 50

// table lists every command: the procedures from their registry first,
// then the other words, in the order help lists them.
func table() []commandDef {
	var t []commandDef
	for _, p := range procedures.Procedures() {
		t = append(t, commandDef{
			name: p.Name, args: strings.TrimSpace(strings.TrimPrefix(p.Usage, p.Name)), help: p.Help,
			cluster: true, procedure: true, parse: parseProcedure, run: (*Dispatcher).procedure,
		})
	}
	return append(t, []commandDef{
		{name: "status", args: "[cluster]", help: "nodes, load balancer, the running run, the latest backup, the next windows",
			more:    "Shows a cluster's nodes, load balancer, running run, latest backup and next windows.",
			cluster: true, data: true, parse: parseClusterOnly,
			run: (*Dispatcher).statusCommand},
		{name: "decide", args: "<run> continue|rollback|abort|retry|done", help: "answer a run's open question",
			more:     "Answers a run's open question, as its buttons in a chat do; the process driving\nthe run acts on it.",
			terminal: true, parse: parseDecide, run: (*Dispatcher).decideCommand},
		{name: "history", args: "[n] [--cluster name]", brief: "[n]", help: fmt.Sprintf("the last n runs (default %d) with outcome and duration", historyDefault),
			more:    "Lists past runs, newest first, with outcome and duration.",
			options: []Option{{Name: "cluster", Help: "only this `cluster`"}},
			data:    true, records: true, parse: parseHistory,
			run: (*Dispatcher).historyCommand},
		{name: "cancel", args: "<run>", help: "abort a run (the current step ends safely first)",
			more:  "Aborts a run: the current step ends safely, then the run stops.",
			parse: parseCancel, run: (*Dispatcher).cancel},
		{name: "backups", args: "[cluster]", help: "list backups with age, size and version",
			more:    "Lists a cluster's backups, newest first, with age, size and version.",
			cluster: true, data: true, parse: parseClusterOnly,
			run: (*Dispatcher).backupsCommand},
		{name: "traffic", args: "on|off [cluster]", help: "switch the load balancer by hand: on sends traffic to the app nodes, off to the maintenance page (not while a run holds the cluster, unless it stopped at a failure)",
			more:    "Switches the load balancer by hand, as a run would, and checks the switch:\non sends traffic to the app nodes, off to the maintenance page. Refused while\na run holds the cluster, unless it stopped at a failure.",
			cluster: true, parse: parseTraffic,
			run: (*Dispatcher).trafficCommand},
		{name: "schedule", args: "add \"<cron>\" <procedure> [args] [--tz Zone] [--duration 2h] [--announce 30m] [--approval required|none] | list | remove <id> | pause <id> | resume <id> | skip <id>",
			brief: "add|list|remove|pause|resume|skip …", help: "maintenance windows (skip: the next start only)",
			more: "Maintenance windows (skip: the next start only). Durations take s, m, h, d\nand w (1d, 2w).",
			data: true, parse: parseSchedule, run: (*Dispatcher).schedule},
		{name: "audit", args: "[--since 1d] [--run id] [-n 50]", help: "the audit log, newest first",
			more: "Prints the audit log, newest first: every command, decision and refusal with\nits outcome, run, front and user.",
			options: []Option{
				{Name: "since", Help: "only entries this recent: a `duration` such as 24h, 1d or 2w"},
				{Name: "run", Help: "only entries about this `run`"},
				{Name: "n", Default: fmt.Sprint(auditDefault), Help: "at most this `many` entries"},
			},
			terminal: true, data: true, records: true, parse: parseAudit, run: (*Dispatcher).audit},
		{name: "help", help: "this help", parse: func(*Command, []string) error { return nil },
			run: (*Dispatcher).helpCommand},
	}...)
}

// lookupCommand finds a command of the table by name.
func lookupCommand(name string) (commandDef, bool) {
	for _, c := range table() {
		if c.name == name {
			return c, true
		}
	}
	return commandDef{}, false
}

// CommandHelp is one command as help texts show it.
type CommandHelp struct {
	Name string
	Args string // the words after the name
	// Brief is Args shortened for a list of commands.
	Brief string
	Help  string // one line
	More  string // a longer help for a command's own page
	// Options are its "--name value" words.
	Options []Option
	// Terminal: only at a terminal; Procedure: it starts a run; Data: its
	// reply carries data a front may print as it is; Records: it reads
	// only the store, so a dispatcher without clusters runs it.
	Terminal, Procedure, Data, Records bool
}

// Commands lists every command of the table, in help's order.
func Commands() []CommandHelp {
	var out []CommandHelp
	for _, c := range table() {
		out = append(out, CommandHelp{Name: c.name, Args: c.args, Brief: cmp.Or(c.brief, c.args), Help: c.help, More: cmp.Or(c.more, c.help),
			Options: c.options, Terminal: c.terminal, Procedure: c.procedure, Data: c.data, Records: c.records})
	}
	return out
}

// Usage returns the usage line of a command, with prefix (e.g. "/nocobase").
func Usage(prefix, name string) string {
	c, ok := lookupCommand(name)
	if !ok {
		return ""
	}
	return strings.TrimSpace(prefix + " " + c.name + " " + c.args)
}

// Help lists every command a front offers, one a line: at a terminal
// (terminal) its own commands too.
func Help(prefix string, terminal bool) string {
	var b strings.Builder
	for _, c := range table() {
		if c.terminal && !terminal {
			continue
		}
		fmt.Fprintf(&b, "%s — %s\n", strings.TrimSpace(prefix+" "+c.name+" "+c.args), c.help)
	}
	return strings.TrimRight(b.String(), "\n")
}

// run runs a parsed command: the cluster resolved when it is about one,
// then its entry's runner.
func (d *Dispatcher) run(ctx context.Context, who Caller, cmd Command) Reply {
	c, found := lookupCommand(cmd.Name)
	if !found || (c.terminal && who.Via != ViaTerminal) {
		return refused(T(fmt.Sprintf("%s is not something I can do here. Try %s help", cmd.Name, who.Prefix)), nil)
	}
	if !c.cluster {
		return c.run(d, ctx, who, cmd)
	}
	cluster, err := d.ResolveCluster(cmd.Cluster, who)
	if err != nil {
		return refused(T(err.Error()+"\nUsage: "+Usage(who.Prefix, cmd.Name)), err)
	}
	cmd.Cluster = cluster
	r := c.run(d, ctx, who, cmd)
	if r.Cluster == "" {
		r.Cluster = cluster
	}
	return r
}

// procedure runs a procedure's command: its plan with --dry-run, else a run.
func (d *Dispatcher) procedure(ctx context.Context, who Caller, cmd Command) Reply {
	if !d.allowed(ctx, who, cmd.Cluster, permRun) {
		return refused(d.denied(who, fmt.Sprintf("You are not allowed to run procedures on %s.", cmd.Cluster)), nil)
	}
	if cmd.DryRun {
		return d.plan(ctx, who, cmd)
	}
	return d.start(ctx, who, cmd)
}

// The runners of the table's commands that take more than the command.

func (d *Dispatcher) statusCommand(ctx context.Context, _ Caller, cmd Command) Reply {
	return d.status(ctx, cmd.Cluster)
}

func (d *Dispatcher) historyCommand(ctx context.Context, _ Caller, cmd Command) Reply {
	return d.history(ctx, cmd.Cluster, cmd.N)
}

func (d *Dispatcher) backupsCommand(ctx context.Context, _ Caller, cmd Command) Reply {
	return d.backups(ctx, cmd.Cluster)
}

func (d *Dispatcher) trafficCommand(ctx context.Context, who Caller, cmd Command) Reply {
	return d.traffic(ctx, who, cmd.Cluster, cmd.Traffic)
}

func (d *Dispatcher) helpCommand(_ context.Context, who Caller, _ Command) Reply {
	return Reply{Outcome: ok(""), Title: "Commands", Text: T(Help(who.Prefix, who.Via == ViaTerminal))}
}

// decideCommand answers a run's open question from a terminal's words.
func (d *Dispatcher) decideCommand(ctx context.Context, who Caller, cmd Command) Reply {
	r := d.decide(ctx, who, Answer{RunID: cmd.RunID, Action: cmd.Action})
	r.RunID = cmd.RunID
	if r.Outcome.Kind == OK && r.Decision != nil {
		r.Text = T(fmt.Sprintf("Recorded: %s on run %s (%s). The process driving the run acts on it; if none does, %s attach %s drives it.",
			ActionLabel(r.Decision.Action), r.Decision.RunID, r.Decision.Checkpoint, who.Prefix, r.Decision.RunID))
	}
	return r
}

// audit reads the audit log, newest first.
func (d *Dispatcher) audit(ctx context.Context, _ Caller, cmd Command) Reply {
	es, err := d.eng.Audit(ctx, cmd.Audit)
	if err != nil {
		return failed("Could not read the audit log", err)
	}
	if len(es) == 0 {
		return Reply{Outcome: ok(""), Text: T("No audit entries."), Data: es}
	}
	f := Field{}
	for _, e := range es {
		f.List = append(f.List, T(At(e.At), " ", Person(e.User), " via ", e.Via, ": ", e.Action, " — ", e.Outcome))
	}
	return Reply{Outcome: ok(""), Title: fmt.Sprintf("Last %d audit entries", len(es)), Fields: []Field{f}, Data: es}
}

// parseDecide reads "<run> continue|rollback|abort|retry|done".
func parseDecide(c *Command, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("which run and which choice?")
	}
	action := store.Action(strings.ToLower(args[1]))
	switch action {
	case "done":
		action = store.ActionContinue
	case "roll-back":
		action = store.ActionRollback
	case store.ActionContinue, store.ActionRollback, store.ActionAbort, store.ActionRetry:
	default:
		return fmt.Errorf("%s: expected continue, rollback, abort, retry or done", procedures.TypedQ(args[1]))
	}
	c.RunID, c.Action = args[0], action
	return nil
}
