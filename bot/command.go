// Package bot is what every front shares: the command language and the
// dispatcher that checks access, asks the engine, writes the audit log
// and replies; the transports are slack/ and terminal/.
package bot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
)

// Command is one parsed command, e.g. "/nocobase upgrade 1.7.14 prod".
type Command struct {
	Name    string // a procedure's name or a key of the commands table
	Cluster string // "" means the channel's default cluster
	DryRun  bool   // a procedure with --dry-run: show the plan, change nothing
	// Proc is a procedure's request as parsed (no requester yet).
	Proc  procedures.Request
	N     int    // history
	RunID string // cancel
	// Traffic is where "traffic on|off" sends the cluster's traffic.
	Traffic ports.LBMode
	// Schedule is set for "schedule …".
	Schedule *ScheduleCommand
}

// ScheduleCommand is "schedule add|list|remove|pause|resume|skip …".
type ScheduleCommand struct {
	Sub      string // add, list, remove, pause, resume, skip
	ID       string // remove, pause, resume, skip
	Cron     string // add
	TZ       string
	Duration time.Duration
	Announce time.Duration
	Approval bool
	// Run is the procedure the window starts, with its arguments.
	Run *Command
	// Text is the procedure and its arguments as typed, kept for display.
	Text string
}

// Request turns a procedure command into an engine request.
func (c Command) Request(requester, via string) procedures.Request {
	r := c.Proc
	r.Cluster, r.DryRun, r.Requester, r.Via = c.Cluster, c.DryRun, requester, via
	return r
}

// IsProcedure reports whether the command starts a run.
func (c Command) IsProcedure() bool { return procedures.IsProcedure(c.Name) }

// UsageError is a mistake in what the user typed; Usage is the line to show.
type UsageError struct {
	Msg   string
	Usage string
}

func (e *UsageError) Error() string {
	if e.Usage == "" {
		return e.Msg
	}
	return e.Msg + "\nUsage: " + e.Usage
}

type commandSpec struct {
	name, args, help string
	parse            func(c *Command, args []string) error
}

// commands is the table of the words that are not procedures; the
// procedures' words come from the procedures registry.
var commands = []commandSpec{
	{"status", "[cluster]", "nodes, load balancer, the running run, the latest backup, the next windows", parseClusterOnly},
	{"history", "[n]", "the last n runs (default 10)", parseHistory},
	{"cancel", "<run>", "abort a run (the current step ends safely first)", parseCancel},
	{"backups", "[cluster]", "list backups with age, size and version", parseClusterOnly},
	{"traffic", "on|off [cluster]", "switch the load balancer by hand: on sends traffic to the app nodes, off to the maintenance page (not while a run holds the cluster, unless it stopped at a failure)", parseTraffic},
	{"schedule", "add \"<cron>\" <procedure> [args] [--tz Zone] [--duration 2h] [--announce 30m] [--approval required|none] | list | remove <id> | pause <id> | resume <id> | skip <id>", "maintenance windows (skip: the next start only)", parseSchedule},
	{"help", "", "this help", func(*Command, []string) error { return nil }},
}

func spec(name string) *commandSpec {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// Usage returns the usage line of a command, with prefix (e.g. "/nocobase").
func Usage(prefix, name string) string {
	if u := procedures.Usage(name); u != "" {
		return prefix + " " + u
	}
	s := spec(name)
	if s == nil {
		return ""
	}
	return strings.TrimSpace(prefix + " " + s.name + " " + s.args)
}

// Help lists every command: the procedures from their registry, then
// the other words from the commands table.
func Help(prefix string) string {
	var b strings.Builder
	for _, p := range procedures.Procedures() {
		fmt.Fprintf(&b, "%s %s — %s\n", prefix, p.Usage, p.Help)
	}
	for _, s := range commands {
		fmt.Fprintf(&b, "%s — %s\n", strings.TrimSpace(prefix+" "+s.name+" "+s.args), s.help)
	}
	return strings.TrimRight(b.String(), "\n")
}

// Parse reads a command line (without the slash command itself). prefix
// is only used in usage lines.
func Parse(prefix, text string) (Command, error) {
	words, err := procedures.SplitWords(text)
	if err != nil {
		return Command{}, &UsageError{Msg: err.Error()}
	}
	return ParseWords(prefix, words)
}

// ParseWords reads a command already cut into words, e.g. a terminal's
// arguments.
func ParseWords(prefix string, words []string) (Command, error) {
	if len(words) == 0 {
		return Command{Name: "help"}, nil
	}
	name := strings.ToLower(words[0])
	if procedures.IsProcedure(name) {
		c, err := procedureCommand(words)
		if err != nil {
			return Command{}, &UsageError{Msg: err.Error(), Usage: Usage(prefix, name)}
		}
		return c, nil
	}
	s := spec(name)
	if s == nil {
		return Command{}, &UsageError{Msg: fmt.Sprintf("unknown command %s. Try %s help", procedures.TypedQ(words[0]), prefix)}
	}
	c := Command{Name: s.name}
	if err := s.parse(&c, words[1:]); err != nil {
		return Command{}, &UsageError{Msg: err.Error(), Usage: Usage(prefix, s.name)}
	}
	return c, nil
}

// procedureCommand parses a procedure's words through the registry.
func procedureCommand(words []string) (Command, error) {
	req, err := procedures.ParseRequest(words)
	if err != nil {
		return Command{}, err
	}
	return Command{Name: req.Procedure, Cluster: req.Cluster, DryRun: req.DryRun, Proc: req}, nil
}

func parseClusterOnly(c *Command, args []string) error {
	switch len(args) {
	case 0:
	case 1:
		c.Cluster = args[0]
	default:
		return fmt.Errorf("too many arguments: %s", procedures.Typed(strings.Join(args[1:], " ")))
	}
	return nil
}

func parseHistory(c *Command, args []string) error {
	c.N = 10
	switch len(args) {
	case 0:
		return nil
	case 1:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > 100 {
			return fmt.Errorf("%s: expected a number from 1 to 100", procedures.TypedQ(args[0]))
		}
		c.N = n
		return nil
	}
	return fmt.Errorf("too many arguments: %s", procedures.Typed(strings.Join(args[1:], " ")))
}

func parseCancel(c *Command, args []string) error {
	if len(args) != 1 {
		return errors.New("which run? give its id, e.g. cancel r1122-7fq3")
	}
	c.RunID = args[0]
	return nil
}

func parseSchedule(c *Command, args []string) error {
	if len(args) == 0 {
		return errors.New("expected add, list, remove, pause, resume or skip")
	}
	sc := &ScheduleCommand{Sub: strings.ToLower(args[0])}
	c.Schedule = sc
	rest := args[1:]
	switch sc.Sub {
	case "list":
		if len(rest) > 0 {
			return fmt.Errorf("too many arguments: %s", procedures.Typed(strings.Join(rest, " ")))
		}
		return nil
	case "remove", "pause", "resume", "skip":
		if len(rest) != 1 {
			return fmt.Errorf("schedule %s needs a window id (see schedule list)", procedures.Typed(sc.Sub))
		}
		sc.ID = rest[0]
		return nil
	case "add":
	default:
		return fmt.Errorf("schedule %s: expected add, list, remove, pause, resume or skip", procedures.Typed(args[0]))
	}
	if len(rest) < 2 {
		return errors.New(`schedule add needs a cron expression in quotes and a procedure, e.g. schedule add "0 2 * * 6" upgrade 1.7.15`)
	}
	sc.Cron = rest[0]
	var proc []string
	for i := 1; i < len(rest); i++ {
		a := rest[i]
		if !windowOption(a) {
			proc = append(proc, a)
			continue
		}
		if i+1 >= len(rest) {
			return fmt.Errorf("%s needs a value", procedures.Typed(a))
		}
		v := rest[i+1]
		i++
		var err error
		switch a {
		case "--tz":
			if _, lerr := time.LoadLocation(v); lerr != nil {
				return fmt.Errorf("--tz %s: not a time zone (expected e.g. Europe/Berlin)", procedures.Typed(v))
			}
			sc.TZ = v
		case "--duration":
			sc.Duration, err = positiveDuration(a, v)
		case "--announce":
			sc.Announce, err = positiveDuration(a, v)
		case "--approval":
			switch v {
			case "required":
				sc.Approval = true
			case "none":
			default:
				return fmt.Errorf("--approval %s: expected required or none", procedures.Typed(v))
			}
		}
		if err != nil {
			return err
		}
	}
	if len(proc) == 0 {
		return errors.New("which procedure should the window run? e.g. upgrade 1.7.15")
	}
	name := strings.ToLower(proc[0])
	if !procedures.IsProcedure(name) {
		return fmt.Errorf("a window runs %s, not %s", procedures.ProcedureNames(), procedures.TypedQ(proc[0]))
	}
	run, err := procedureCommand(proc)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if run.DryRun {
		return errors.New("a window cannot run a --dry-run")
	}
	sc.Run = &run
	sc.Text = strings.Join(proc, " ")
	c.Cluster = run.Cluster
	return nil
}

// windowOption: the options of schedule add itself; every other word
// belongs to the procedure the window runs.
func windowOption(w string) bool {
	switch w {
	case "--tz", "--duration", "--announce", "--approval":
		return true
	}
	return false
}

func positiveDuration(flag, v string) (time.Duration, error) {
	d, err := format.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %s: expected a duration such as 30m, 2h or 1d", flag, procedures.Typed(v))
	}
	return d, nil
}

func parseTraffic(c *Command, args []string) error {
	if len(args) == 0 || len(args) > 2 {
		return errors.New("expected traffic on or traffic off, and the cluster if there are several")
	}
	switch strings.ToLower(args[0]) {
	case "on":
		c.Traffic = ports.LBNormal
	case "off":
		c.Traffic = ports.LBMaintenance
	default:
		return fmt.Errorf("traffic %s: expected on (to the app nodes) or off (the maintenance page)", procedures.Typed(args[0]))
	}
	if len(args) == 2 {
		c.Cluster = args[1]
	}
	return nil
}
