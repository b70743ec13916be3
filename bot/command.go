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
	"unicode"

	"github.com/nocobot/nocobot/procedures"
)

// Command is one parsed command, e.g. "/nocobase upgrade 1.7.14 prod".
type Command struct {
	Name    string // a key of the commands table
	Cluster string // "" means the channel's default cluster
	Version string // upgrade
	DryRun  bool   // upgrade --dry-run: show the plan, change nothing
	Actions []procedures.MaintAction
	N       int    // history
	RunID   string // cancel
	// Schedule is set for "schedule …".
	Schedule *ScheduleCommand
}

// ScheduleCommand is "schedule add|list|remove|pause|resume …".
type ScheduleCommand struct {
	Sub      string // add, list, remove, pause, resume
	ID       string // remove, pause, resume
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
	return procedures.Request{Cluster: c.Cluster, Procedure: c.Name, Version: c.Version, Actions: c.Actions, Requester: requester, Via: via}
}

// IsProcedure reports whether the command starts a run.
func (c Command) IsProcedure() bool {
	return c.Name == procedures.ProcUpgrade || c.Name == procedures.ProcMaintain || c.Name == procedures.ProcStart
}

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

// commands is the one table the parser, the usage lines and help come from.
var commands = []commandSpec{
	{"upgrade", "<version> [cluster] [--dry-run]", "upgrade the cluster to a NocoBase version (503 page, backup, one node first, your check, the rest)", parseUpgrade},
	{"maintain", "[cluster] [plugin enable|disable|add <package>]… [backup] [restore <backup-id>]", "scale down to one node for in-app maintenance: the actions given, or a manual window", parseMaintain},
	{"start", "[cluster]", "first start: one node until healthy, then the others, then traffic", parseClusterOnly},
	{"status", "[cluster]", "nodes, load balancer, the running run, the latest backup, the next windows", parseClusterOnly},
	{"history", "[n]", "the last n runs (default 10)", parseHistory},
	{"cancel", "<run>", "abort a run (the current step ends safely first)", parseCancel},
	{"backups", "[cluster]", "list backups with age, size and version", parseClusterOnly},
	{"schedule", "add \"<cron>\" <procedure> [args] [--tz Zone] [--duration 2h] [--announce 30m] [--approval required|none] | list | remove <id> | pause <id> | resume <id>", "maintenance windows", parseSchedule},
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
	s := spec(name)
	if s == nil {
		return ""
	}
	return strings.TrimSpace(prefix + " " + s.name + " " + s.args)
}

// Help lists every command, generated from the same table as the parser.
func Help(prefix string) string {
	var b strings.Builder
	for _, s := range commands {
		fmt.Fprintf(&b, "%s — %s\n", strings.TrimSpace(prefix+" "+s.name+" "+s.args), s.help)
	}
	return strings.TrimRight(b.String(), "\n")
}

// Parse reads a command (without the slash command itself). prefix is
// only used in usage lines.
func Parse(prefix, text string) (Command, error) {
	words, err := split(text)
	if err != nil {
		return Command{}, &UsageError{Msg: err.Error()}
	}
	if len(words) == 0 {
		return Command{Name: "help"}, nil
	}
	s := spec(strings.ToLower(words[0]))
	if s == nil {
		return Command{}, &UsageError{Msg: fmt.Sprintf("unknown command %q. Try %s help", words[0], prefix)}
	}
	c := Command{Name: s.name}
	if err := s.parse(&c, words[1:]); err != nil {
		return Command{}, &UsageError{Msg: err.Error(), Usage: Usage(prefix, s.name)}
	}
	if c.IsProcedure() {
		req := c.Request("check", "check")
		req.Cluster = "any"
		if err := req.Validate(); err != nil {
			return Command{}, &UsageError{Msg: err.Error(), Usage: Usage(prefix, s.name)}
		}
	}
	return c, nil
}

// split cuts text into words; "double" or 'single' quotes keep spaces.
// Slack turns quotes into curly ones, which count too.
func split(text string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var closing rune
	for _, r := range text {
		switch {
		case closing != 0:
			if r == closing || (closing == '"' && r == '”') {
				closing = 0
				continue
			}
			cur.WriteRune(r)
		case r == '"' || r == '“' || r == '”':
			closing, inWord = '"', true
			if r == '“' {
				closing = '”'
			}
		case r == '\'' || r == '‘':
			closing, inWord = '\'', true
			if r == '‘' {
				closing = '’'
			}
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if closing != 0 {
		return nil, errors.New("a quote is not closed")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func parseUpgrade(c *Command, args []string) error {
	var pos []string
	for _, a := range args {
		switch {
		case a == "--dry-run":
			c.DryRun = true
		case strings.HasPrefix(a, "-"):
			return fmt.Errorf("unknown option %s", a)
		default:
			pos = append(pos, a)
		}
	}
	switch len(pos) {
	case 0:
		return errors.New("which version? e.g. upgrade 1.7.14")
	case 1:
		c.Version = pos[0]
	case 2:
		c.Version, c.Cluster = pos[0], pos[1]
	default:
		return fmt.Errorf("too many arguments: %s", strings.Join(pos[2:], " "))
	}
	return procedures.ValidateVersion(c.Version)
}

func parseMaintain(c *Command, args []string) error {
	i := 0
	if i < len(args) && !isMaintKeyword(args[i]) {
		c.Cluster = args[i]
		i++
	}
	for i < len(args) {
		switch strings.ToLower(args[i]) {
		case "plugin":
			if i+2 >= len(args) {
				return errors.New("plugin needs an action and a package, e.g. plugin enable @nocobase/plugin-map")
			}
			act := strings.ToLower(args[i+1])
			if act != "enable" && act != "disable" && act != "add" {
				return fmt.Errorf("plugin %s: expected enable, disable or add", args[i+1])
			}
			c.Actions = append(c.Actions, procedures.MaintAction{Kind: act, Arg: args[i+2]})
			i += 3
		case "backup":
			c.Actions = append(c.Actions, procedures.MaintAction{Kind: "backup"})
			i++
		case "restore":
			if i+1 >= len(args) {
				return errors.New("restore needs a backup id (see backups)")
			}
			c.Actions = append(c.Actions, procedures.MaintAction{Kind: "restore", Arg: args[i+1]})
			i += 2
		default:
			return fmt.Errorf("unexpected %q", args[i])
		}
	}
	return nil
}

func isMaintKeyword(s string) bool {
	switch strings.ToLower(s) {
	case "plugin", "backup", "restore":
		return true
	}
	return false
}

func parseClusterOnly(c *Command, args []string) error {
	switch len(args) {
	case 0:
	case 1:
		c.Cluster = args[0]
	default:
		return fmt.Errorf("too many arguments: %s", strings.Join(args[1:], " "))
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
			return fmt.Errorf("%q: expected a number from 1 to 100", args[0])
		}
		c.N = n
		return nil
	}
	return fmt.Errorf("too many arguments: %s", strings.Join(args[1:], " "))
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
		return errors.New("expected add, list, remove, pause or resume")
	}
	sc := &ScheduleCommand{Sub: strings.ToLower(args[0])}
	c.Schedule = sc
	rest := args[1:]
	switch sc.Sub {
	case "list":
		if len(rest) > 0 {
			return fmt.Errorf("too many arguments: %s", strings.Join(rest, " "))
		}
		return nil
	case "remove", "pause", "resume":
		if len(rest) != 1 {
			return fmt.Errorf("schedule %s needs a window id (see schedule list)", sc.Sub)
		}
		sc.ID = rest[0]
		return nil
	case "add":
	default:
		return fmt.Errorf("schedule %s: expected add, list, remove, pause or resume", args[0])
	}
	if len(rest) < 2 {
		return errors.New(`schedule add needs a cron expression in quotes and a procedure, e.g. schedule add "0 2 * * 6" upgrade 1.7.15`)
	}
	sc.Cron = rest[0]
	var proc []string
	for i := 1; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "--") || a == "--dry-run" {
			proc = append(proc, a)
			continue
		}
		if i+1 >= len(rest) {
			return fmt.Errorf("%s needs a value", a)
		}
		v := rest[i+1]
		i++
		var err error
		switch a {
		case "--tz":
			if _, lerr := time.LoadLocation(v); lerr != nil {
				return fmt.Errorf("--tz %s: not a time zone (expected e.g. Europe/Berlin)", v)
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
				return fmt.Errorf("--approval %s: expected required or none", v)
			}
		default:
			return fmt.Errorf("unknown option %s", a)
		}
		if err != nil {
			return err
		}
	}
	if len(proc) == 0 {
		return errors.New("which procedure should the window run? e.g. upgrade 1.7.15")
	}
	name := strings.ToLower(proc[0])
	// Not through the commands table: it refers to this function.
	parse := map[string]func(*Command, []string) error{
		"upgrade": parseUpgrade, "maintain": parseMaintain, "start": parseClusterOnly,
	}[name]
	if parse == nil {
		return fmt.Errorf("a window runs upgrade, maintain or start, not %q", proc[0])
	}
	run := &Command{Name: name}
	if err := parse(run, proc[1:]); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if run.DryRun {
		return errors.New("a window cannot run a --dry-run")
	}
	sc.Run = run
	sc.Text = strings.Join(proc, " ")
	c.Cluster = run.Cluster
	return nil
}

func positiveDuration(flag, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %s: expected a duration such as 30m or 2h", flag, v)
	}
	return d, nil
}
