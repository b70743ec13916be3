package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// The fronts, as the audit log and the runs name them; a window's runs
// have procedures.ViaScheduler.
const (
	ViaSlack    = "slack"
	ViaTerminal = "terminal"
)

// Engine is what the dispatcher asks of *procedures.Engine.
type Engine interface {
	ClusterNames() []string
	Start(ctx context.Context, req procedures.Request) (store.Run, error)
	Plan(ctx context.Context, req procedures.Request) (string, error)
	DecideAs(ctx context.Context, d store.Decision, rules procedures.DecisionRules) (store.Decision, error)
	CancelAs(ctx context.Context, runID, by, via string, rules procedures.DecisionRules) error
	RunByID(ctx context.Context, id string) (store.Run, error)
	Runs(ctx context.Context, cluster string, limit int) ([]store.Run, error)
	Decisions(ctx context.Context, runID string) ([]store.Decision, error)
	Status(ctx context.Context, cluster string) (procedures.ClusterStatus, error)
	Backups(ctx context.Context, cluster string) ([]ports.BackupInfo, error)
	Window(ctx context.Context, id string) (store.Window, error)
	AppendAudit(ctx context.Context, e store.AuditEntry) error
	Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
}

// Scheduler is what the dispatcher asks of the maintenance window
// scheduler. It may be nil: scheduling is off.
type Scheduler interface {
	// Add saves a window and returns it with its next three start times;
	// the error text is the cron parser's reason.
	Add(ctx context.Context, w store.Window) (store.Window, []time.Time, error)
	List(ctx context.Context) ([]store.Window, error)
	Remove(ctx context.Context, id string) error
	SetPaused(ctx context.Context, id string, paused bool) (store.Window, error)
	Skip(ctx context.Context, id string, start time.Time, by string) error
	Approve(ctx context.Context, id string, start time.Time, by string) error
}

// Caller is who sends a command or decision, and from where.
type Caller struct {
	User string // Slack user id, "terminal:alice"
	Name string // display name, when the front knows it
	Via  string // the front: ViaSlack, ViaTerminal
	// Channel is the chat channel the command came from ("" at a terminal).
	Channel string
	// Prefix is how the front spells commands, for usage lines:
	// "/nocobase", "nocobot run".
	Prefix string
	// Groups resolves the user groups of the access rules; nil: none.
	Groups Groups
	// Channels says which channels the front obeys and the cluster each
	// is bound to; nil: none (a terminal).
	Channels Channels
}

// Options configure a dispatcher.
type Options struct {
	Config    *config.Config
	Engine    Engine
	Scheduler Scheduler // nil: scheduling is off
	Log       zerolog.Logger
	// TrustTerminal lets a terminal's operator pass the access rules and
	// the four-eyes rule: whoever can read the configuration and the
	// store runs procedures by hand anyway.
	TrustTerminal bool
	// Now is the clock of audit entries and decisions; default time.Now.
	Now func() time.Time
}

// Dispatcher turns a command or a decision from any front into an
// outcome: it resolves the cluster, checks access, asks the engine,
// writes the audit entry and returns a reply for the front to render.
type Dispatcher struct {
	cfg           *config.Config
	eng           Engine
	sched         Scheduler
	log           zerolog.Logger
	trustTerminal bool
	now           func() time.Time

	mu       sync.Mutex
	deciding map[string]bool // run|checkpoint being decided now
}

// auditTimeout bounds the write of one audit entry.
const auditTimeout = 10 * time.Second

// New makes a dispatcher.
func New(opts Options) (*Dispatcher, error) {
	if opts.Config == nil {
		return nil, errors.New("dispatcher: no configuration")
	}
	if opts.Engine == nil {
		return nil, errors.New("dispatcher: no engine")
	}
	d := &Dispatcher{
		cfg: opts.Config, eng: opts.Engine, sched: opts.Scheduler, log: opts.Log,
		trustTerminal: opts.TrustTerminal, now: opts.Now, deciding: map[string]bool{},
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

// Command runs one command line as typed after the front's command
// ("upgrade 1.7.14 prod"). Every call writes one audit entry.
func (d *Dispatcher) Command(ctx context.Context, who Caller, line string) Reply {
	line = strings.TrimSpace(line)
	said := strings.TrimSpace(who.Prefix + " " + line)
	if !d.inObeyedChannel(who) {
		return d.record(ctx, who, said, refusedChannel())
	}
	words, err := procedures.SplitWords(line)
	if err != nil {
		err = &UsageError{Msg: err.Error()}
		return d.record(ctx, who, said, refused(T(err.Error()), err))
	}
	return d.record(ctx, who, said, d.words(ctx, who, words))
}

// CommandWords is Command for a line already cut into words (a
// terminal's arguments); said is the command as the audit log shows it.
func (d *Dispatcher) CommandWords(ctx context.Context, who Caller, words []string, said string) Reply {
	if !d.inObeyedChannel(who) {
		return d.record(ctx, who, said, refusedChannel())
	}
	return d.record(ctx, who, said, d.words(ctx, who, words))
}

// words parses a command through the table and runs it. A command only
// a terminal offers is unknown elsewhere.
func (d *Dispatcher) words(ctx context.Context, who Caller, words []string) Reply {
	if len(words) > 0 && who.Via != ViaTerminal {
		if c, ok := lookupCommand(strings.ToLower(words[0])); ok && c.terminal {
			err := &UsageError{Msg: fmt.Sprintf("unknown command %s. Try %s help", procedures.TypedQ(words[0]), who.Prefix)}
			return refused(T(err.Error()), err)
		}
	}
	cmd, err := ParseWords(who.Prefix, words)
	if err != nil {
		return refused(T(err.Error()), err)
	}
	return d.run(ctx, who, cmd)
}

// Refuse records a refusal the front decided in its own terms (a button
// it does not know) and returns the reply to render.
func (d *Dispatcher) Refuse(ctx context.Context, who Caller, said, msg string) Reply {
	return d.record(ctx, who, said, refused(T(msg), nil))
}

func refusedChannel() Reply {
	return refused(T("I don't take commands in this channel. Use a channel bound to a cluster, or ask an admin to add this one to the channels I obey (access in the configuration)."), nil)
}

// unknownCluster is a cluster name no configured cluster has: a thing
// not found (errors.Is store.ErrNotFound), as an unknown run is.
type unknownCluster string

func (e unknownCluster) Error() string        { return string(e) }
func (e unknownCluster) Is(target error) bool { return target == store.ErrNotFound }

// ResolveCluster finds the cluster a command is about: the one named,
// or the one bound to who's channel, or the only one.
func (d *Dispatcher) ResolveCluster(named string, who Caller) (string, error) {
	channel := who.Channel
	names := d.eng.ClusterNames()
	if named != "" {
		if !slices.Contains(names, named) {
			return "", unknownCluster(fmt.Sprintf("unknown cluster %s (known: %s)", procedures.TypedQ(named), strings.Join(names, ", ")))
		}
		return named, nil
	}
	if channel != "" && who.Channels != nil {
		if name := who.Channels.ClusterOf(channel); slices.Contains(names, name) {
			return name, nil
		}
	}
	if len(names) == 1 {
		return names[0], nil
	}
	if channel == "" {
		return "", fmt.Errorf("which cluster? name one of: %s", strings.Join(names, ", "))
	}
	return "", fmt.Errorf("which cluster? No cluster is bound to this channel (known: %s)", strings.Join(names, ", "))
}

func (d *Dispatcher) plan(ctx context.Context, who Caller, cmd Command) Reply {
	p, err := d.eng.Plan(ctx, cmd.Request(who.User, who.Via))
	if err != nil {
		return failed("Could not make a plan", err)
	}
	return Reply{Outcome: ok("dry run"), Title: "Dry run — nothing changes.", Text: T(p)}
}

func (d *Dispatcher) start(ctx context.Context, who Caller, cmd Command) Reply {
	run, err := d.eng.Start(ctx, cmd.Request(who.User, who.Via))
	var busy *procedures.BusyError
	if errors.As(err, &busy) {
		b := busy.Run
		r := refused(T(b.Cluster, " is busy: run ", b.ID, " (", procedures.Title(b), ", requested by ", Person(b.Requester), ") is ", StateWords(b.State),
			". Wait for it or ", Code(who.Prefix+" cancel "+b.ID), "."), err)
		r.RunID = b.ID
		return r
	}
	if err != nil {
		return failed("Could not start", err)
	}
	return Reply{Outcome: ok(""), RunID: run.ID, Started: true, Cluster: run.Cluster,
		Text: T("Started run ", run.ID, ": ", procedures.Title(run), ".")}
}

func (d *Dispatcher) cancel(ctx context.Context, who Caller, cmd Command) Reply {
	id := cmd.RunID
	r := d.cancelRun(ctx, who, id)
	r.RunID = id
	return r
}

func (d *Dispatcher) cancelRun(ctx context.Context, who Caller, id string) Reply {
	// The engine reads the run once and asks rules for the access rules.
	rules := &cancelRules{decideRules{d: d, ctx: ctx, who: who}}
	err := d.eng.CancelAs(ctx, id, who.User, who.Via, rules)
	var refusal ruleRefusal
	if errors.As(err, &refusal) {
		return refusal.r
	}
	var de *procedures.DecisionError
	if errors.As(err, &de) {
		switch de.Why {
		case procedures.DecisionNoRun:
			return refused(T("There is no run ", procedures.Typed(id), ". See ", Code(who.Prefix+" history"), "."), err)
		case procedures.DecisionFinished:
			return refused(T(fmt.Sprintf("Run %s has already finished (%s).", id, StateWords(de.Run.State))), nil)
		}
	}
	if err != nil {
		return failed("Could not cancel", err)
	}
	return Reply{Outcome: ok(""), Cluster: rules.cluster,
		Text: T(fmt.Sprintf("Abort requested for run %s: the current step ends safely, then the run stops, and its summary says where the cluster stands.", id))}
}

// cancelRules: the run permission on the run's cluster.
type cancelRules struct{ decideRules }

func (cr *cancelRules) MayDecide(run store.Run) error {
	cr.cluster = run.Cluster
	if !cr.d.allowed(cr.ctx, cr.who, run.Cluster, permRun) {
		return ruleRefusal{refused(cr.d.denied(cr.who, fmt.Sprintf("You are not allowed to cancel runs on %s.", run.Cluster)), nil)}
	}
	return nil
}

// record writes the audit entry of a reply and returns the reply.
func (d *Dispatcher) record(ctx context.Context, who Caller, said string, r Reply) Reply {
	e := store.AuditEntry{
		At: d.now(), User: who.User, Channel: who.Channel, Via: who.Via,
		Action: said, RunID: r.RunID, Outcome: r.Outcome.String(),
	}
	// Even when the request that brought it ends: the log must hold it.
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := d.eng.AppendAudit(c, e); err != nil {
		d.log.Error().Err(err).Str("user", e.User).Str("action", e.Action).Msg("could not write the audit log")
	}
	return r
}
