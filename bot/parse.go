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
	"github.com/nocobot/nocobot/store"
)

// Command is one parsed command, e.g. "/nocobase upgrade 1.7.14 prod".
type Command struct {
	Name    string // a procedure's name or a key of the commands table
	Cluster string // "" means the channel's default cluster
	DryRun  bool   // a procedure with --dry-run: show the plan, change nothing
	// Proc is a procedure's request as parsed (no requester yet).
	Proc  procedures.Request
	N     int    // history
	RunID string // cancel, decide
	// Action is decide's choice.
	Action store.Action
	// Audit is what audit reads.
	Audit store.AuditQuery
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
	c, ok := lookupCommand(strings.ToLower(words[0]))
	if !ok {
		return Command{}, &UsageError{Msg: fmt.Sprintf("unknown command %s. Try %s help", procedures.TypedQ(words[0]), prefix)}
	}
	cmd := Command{Name: c.name}
	if err := c.parse(&cmd, words[1:]); err != nil {
		return Command{}, &UsageError{Msg: err.Error(), Usage: Usage(prefix, c.name)}
	}
	return cmd, nil
}

// ParseProcedure reads a procedure's command line through the table:
// a maintenance window's command, read as the scheduler starts it
// (schedule.ParseFunc) and as schedule add checked it. A word that is
// no procedure gets the registry's answer, which names them.
func ParseProcedure(line string) (procedures.Request, error) {
	words, err := procedures.SplitWords(line)
	if err != nil {
		return procedures.Request{}, err
	}
	if len(words) == 0 {
		return procedures.ParseRequest(words)
	}
	c, ok := lookupCommand(strings.ToLower(words[0]))
	if !ok || !c.procedure {
		return procedures.ParseRequest(words)
	}
	cmd := Command{Name: c.name}
	if err := c.parse(&cmd, words[1:]); err != nil {
		return procedures.Request{}, err
	}
	return cmd.Proc, nil
}

// parseProcedure reads a procedure's words through its registry.
func parseProcedure(c *Command, args []string) error {
	req, err := procedures.ParseRequest(append([]string{c.Name}, args...))
	if err != nil {
		return err
	}
	c.Cluster, c.DryRun, c.Proc = req.Cluster, req.DryRun, req
	return nil
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
	c.N = historyDefault
	var pos []string
	for i := 0; i < len(args); i++ {
		if args[i] != "--cluster" {
			pos = append(pos, args[i])
			continue
		}
		if i+1 >= len(args) {
			return errors.New("--cluster needs a value")
		}
		i++
		c.Cluster = args[i]
	}
	switch len(pos) {
	case 0:
		return nil
	case 1:
		n, err := strconv.Atoi(pos[0])
		if err != nil || n < 1 || n > 100 {
			return fmt.Errorf("%s: expected a number from 1 to 100", procedures.TypedQ(pos[0]))
		}
		c.N = n
		return nil
	}
	return fmt.Errorf("too many arguments: %s", procedures.Typed(strings.Join(pos[1:], " ")))
}

// parseAudit reads "[--since 1d] [--run id] [-n 50]".
func parseAudit(c *Command, args []string) error {
	c.Audit.Limit = auditDefault
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--since", "--run", "-n":
		default:
			return fmt.Errorf("unexpected %s", procedures.TypedQ(a))
		}
		if i+1 >= len(args) {
			return fmt.Errorf("%s needs a value", a)
		}
		i++
		v := args[i]
		switch a {
		case "--since":
			d, err := format.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("--since %s: %s is not a duration: expected e.g. 24h, 1d or 2w", procedures.Typed(v), procedures.TypedQ(v))
			}
			if d > 0 {
				c.Audit.Since = time.Now().Add(-d)
			}
		case "--run":
			c.Audit.RunID = v
		case "-n":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("-n %s: expected a whole number, e.g. %d", procedures.Typed(v), auditDefault)
			}
			c.Audit.Limit = n
		}
	}
	return nil
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
	run := Command{Name: name}
	if err := parseProcedure(&run, proc[1:]); err != nil {
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
