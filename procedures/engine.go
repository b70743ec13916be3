// Package procedures is nocobot's runbook engine and the NocoBase
// procedures it runs (upgrade, maintain, first start).
//
// A run is a list of steps recorded in the store. The engine persists
// every transition before the next outside action, so a run survives a
// crash: a new engine on the same store resumes a step that is safe to
// repeat and otherwise stops at a decision that a person answers.
// Decisions (button presses, prompt answers, timeouts) reach the engine
// only through the store, so they survive restarts and cross replicas.
package procedures

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// TimeoutPolicy says what happens when nobody answers a verify checkpoint
// before its deadline.
type TimeoutPolicy string

const (
	TimeoutRemind   TimeoutPolicy = "remind" // remind and keep waiting
	TimeoutRollback TimeoutPolicy = "rollback"
	TimeoutAbort    TimeoutPolicy = "abort"
)

// Cluster is one NocoBase cluster and the adapters that reach it.
type Cluster struct {
	Name string
	// ImageRepo is the image repository without tag; empty means the
	// repository the nodes run now.
	ImageRepo string
	// TagSuffix is appended to the version to form the tag, e.g. "-full".
	TagSuffix string

	Nodes    ports.Nodes
	App      ports.App
	Backups  ports.Backups
	Balancer ports.Balancer
	// Redis is the cluster's Redis state (cache, locks, signals); nil
	// for a cluster without Redis.
	Redis ports.Redis

	HealthTimeout     time.Duration // per node start; default 10 min
	CheckpointTimeout time.Duration // verify checkpoint; default 1 h
	OnTimeout         TimeoutPolicy // default remind
	StepTimeout       time.Duration // any other step; default 2 h
	// StartParallelism is how many nodes start at once after the first,
	// and how many change image at once: 0 all of them, 1 one by one.
	StartParallelism int
	// NodeEnv, when each node has its own environment (plain containers),
	// lets preflight compare the nodes' environments and the nodes after
	// the first start with NocoBase's upgrade skipped; nil otherwise.
	NodeEnv ports.NodeEnv
	// Migrations says how the nodes after the first start
	// (MigrationsAuto, MigrationsSkipSameVersion, MigrationsOneAtATime).
	Migrations string
	// PerNodeEnv names variables that may differ from node to node, on
	// top of those that always may (perNodeVars).
	PerNodeEnv []string
	// StartDuringVerify: an upgrade starts the nodes after the first while
	// its verify checkpoint waits, traffic still on the maintenance page
	// (a run may say otherwise; see duringverify.go).
	StartDuringVerify bool
}

// Options configure an engine.
type Options struct {
	Store    store.Store
	Clusters []*Cluster
	Log      zerolog.Logger
	Clock    ports.Clock // default: the wall clock
	// Events is the bus the engine publishes its runs' events to, shared
	// with the scheduler and read by the fronts; default a bus of its own.
	Events *events.Bus
	// Owner identifies this engine among replicas; default host-pid.
	Owner string
	// LeaseTTL is how long a claim on a run lasts without renewal.
	LeaseTTL time.Duration
	// PollEvery is the fallback interval for noticing decisions and
	// unowned runs when no notification arrives.
	PollEvery time.Duration
}

// Engine runs procedures.
type Engine struct {
	store    store.Store
	clusters map[string]*Cluster
	log      zerolog.Logger
	clock    ports.Clock
	owner    string
	leaseTTL time.Duration
	poll     time.Duration
	bus      *events.Bus

	mu      sync.Mutex
	running map[string]*execution // run id → execution owned here
	wg      sync.WaitGroup
	baseCtx context.Context
}

// execution is a run this engine is driving.
type execution struct {
	cancel context.CancelFunc
	wake   chan struct{} // a decision about the run was recorded
}

// BusyError wraps store.ErrClusterBusy with the run that holds the cluster.
type BusyError struct{ Run store.Run }

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is busy: run %s (%s, requested by %s) is %s", e.Run.Cluster, e.Run.ID, e.Run.Procedure, e.Run.Requester, e.Run.State)
}

func (e *BusyError) Unwrap() error { return store.ErrClusterBusy }

// New makes an engine; call Run to let it work.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("engine: no store")
	}
	e := &Engine{
		store: opts.Store, clusters: map[string]*Cluster{}, log: opts.Log,
		clock: opts.Clock, owner: opts.Owner, leaseTTL: opts.LeaseTTL, poll: opts.PollEvery,
		bus: opts.Events, running: map[string]*execution{},
	}
	if e.clock == nil {
		e.clock = ports.SystemClock()
	}
	if e.bus == nil {
		e.bus = events.NewBus()
	}
	if e.owner == "" {
		host, _ := os.Hostname()
		e.owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomID(4))
	}
	if e.leaseTTL <= 0 {
		e.leaseTTL = 15 * time.Second
	}
	if e.poll <= 0 {
		e.poll = 2 * time.Second
	}
	for _, c := range opts.Clusters {
		if c.Name == "" || c.Nodes == nil || c.App == nil || c.Backups == nil || c.Balancer == nil {
			return nil, fmt.Errorf("engine: cluster %q is missing a name or an adapter", c.Name)
		}
		if _, dup := e.clusters[c.Name]; dup {
			return nil, fmt.Errorf("engine: cluster %q twice", c.Name)
		}
		cc := *c
		if cc.HealthTimeout <= 0 {
			cc.HealthTimeout = 10 * time.Minute
		}
		if cc.CheckpointTimeout <= 0 {
			cc.CheckpointTimeout = time.Hour
		}
		if cc.OnTimeout == "" {
			cc.OnTimeout = TimeoutRemind
		}
		if cc.StepTimeout <= 0 {
			cc.StepTimeout = 2 * time.Hour
		}
		e.clusters[c.Name] = &cc
	}
	return e, nil
}

// ClusterNames lists the configured clusters, sorted.
func (e *Engine) ClusterNames() []string {
	var out []string
	for n := range e.clusters {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Subscribe returns a subscription to every event from now on.
func (e *Engine) Subscribe() *events.Subscription { return e.bus.Subscribe() }

// Run resumes unfinished runs, takes over runs whose owner died, keeps
// this engine's leases alive and delivers decisions, until ctx ends. It
// then waits for the runs it drives to stop. Their leases are left to
// lapse, as after a crash: another replica takes them over then.
func (e *Engine) Run(ctx context.Context) error { return e.serve(ctx, true) }

// RunOwn is Run for a process that drives only the runs it starts (a
// terminal's run): it never takes over another process's run, so a
// command refused because the cluster is busy changes nothing.
func (e *Engine) RunOwn(ctx context.Context) error { return e.serve(ctx, false) }

func (e *Engine) serve(ctx context.Context, adopt bool) error {
	e.mu.Lock()
	e.baseCtx = ctx
	e.mu.Unlock()
	watch, err := e.store.WatchDecisions(ctx)
	if err != nil {
		return fmt.Errorf("engine: watch decisions: %w", err)
	}
	if adopt {
		e.adoptRuns(ctx)
	}
	tick := time.NewTicker(min(e.leaseTTL/3, e.poll))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.wg.Wait()
			return nil
		case id, ok := <-watch:
			if !ok {
				watch = nil
				continue
			}
			e.wakeRun(id)
		case <-tick.C:
			if adopt {
				e.adoptRuns(ctx)
			}
			e.wakeAll()
		}
	}
}

func (e *Engine) wakeRun(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.running[id]; ok {
		select {
		case x.wake <- struct{}{}:
		default:
		}
	}
}

func (e *Engine) wakeAll() {
	e.mu.Lock()
	ids := make([]string, 0, len(e.running))
	for id := range e.running {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.wakeRun(id)
	}
}

// adoptRuns claims unfinished runs that no live engine drives and resumes them.
func (e *Engine) adoptRuns(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	runs, err := e.store.UnfinishedRuns(c)
	cancel()
	if err != nil {
		e.log.Warn().Err(err).Msg("could not list unfinished runs")
		return
	}
	now := time.Now()
	for _, r := range runs {
		e.mu.Lock()
		_, mine := e.running[r.ID]
		e.mu.Unlock()
		if mine || (r.Owner != "" && r.Owner != e.owner && now.Before(r.LeaseUntil)) {
			continue
		}
		if _, ok := e.clusters[r.Cluster]; !ok {
			e.log.Warn().Str("run", r.ID).Str("cluster", r.Cluster).Msg("unfinished run on a cluster this engine does not know")
			continue
		}
		sent := time.Now()
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		claimed, err := e.store.ClaimRun(c, r.ID, e.owner, sent.Add(e.leaseTTL))
		cancel()
		if err != nil {
			if !errors.Is(err, store.ErrNotOwner) {
				e.log.Warn().Err(err).Str("run", r.ID).Msg("could not claim run")
			}
			continue
		}
		e.log.Info().Str("run", r.ID).Str("state", string(claimed.State)).Msg("resuming run")
		e.launch(ctx, claimed, true, sent)
	}
}

// launch drives a run this engine has just claimed; sent is when the
// claim was sent.
func (e *Engine) launch(ctx context.Context, r store.Run, resumed bool, sent time.Time) {
	e.mu.Lock()
	if _, ok := e.running[r.ID]; ok {
		e.mu.Unlock()
		return
	}
	base := e.baseCtx
	if base == nil {
		base = ctx
	}
	rctx, stop := context.WithCancelCause(base)
	cancel := func() { stop(context.Canceled) }
	x := &execution{cancel: cancel, wake: make(chan struct{}, 1)}
	l := newLease(e.leaseTTL, sent)
	e.running[r.ID] = x
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.running, r.ID)
			e.mu.Unlock()
			cancel()
		}()
		ex := &runner{e: e, c: fenced(e.clusters[r.Cluster], l), lease: l, run: r, wake: x.wake}
		go e.keepLease(rctx, r.ID, l, stop, func() {
			snap := ex.snapshot()
			e.publish(events.StoreDown, snap, snap.Current,
				"cannot confirm this engine's hold on the run (store unreachable): the step was stopped; the run resumes once the store is back", nil)
		})
		ex.drive(rctx, resumed)
	}()
}

// Start validates a request, records a new run (taking the cluster's
// lock) and starts it. A busy cluster gives a *BusyError.
func (e *Engine) Start(ctx context.Context, req Request) (store.Run, error) {
	if err := req.Validate(); err != nil {
		return store.Run{}, err
	}
	if req.DryRun {
		return store.Run{}, errors.New("a --dry-run only shows the plan: nothing was started")
	}
	c, ok := e.clusters[req.Cluster]
	if !ok {
		return store.Run{}, fmt.Errorf("unknown cluster %q (known: %s)", req.Cluster, strings.Join(e.ClusterNames(), ", "))
	}
	now := e.clock.Now()
	sent := time.Now()
	r := store.Run{
		ID: newRunID(now), Cluster: c.Name, Procedure: req.Procedure, Params: runParams(c, req),
		Requester: req.Requester, Via: req.Via, State: store.StateRunning,
		Created: now, Updated: now, Owner: e.owner, LeaseUntil: sent.Add(e.leaseTTL),
	}
	for _, d := range forwardSteps(&r) {
		r.Steps = append(r.Steps, store.Step{Name: d.name, Title: d.title, Status: store.StepPending})
	}
	created, err := e.store.CreateRun(ctx, r)
	// Ids are random: on the rare collision, draw another.
	for try := 0; errors.Is(err, store.ErrExists) && try < 5; try++ {
		r.ID = newRunID(now)
		sent = time.Now()
		r.LeaseUntil = sent.Add(e.leaseTTL)
		created, err = e.store.CreateRun(ctx, r)
	}
	if errors.Is(err, store.ErrClusterBusy) {
		return store.Run{}, &BusyError{Run: created}
	}
	if err != nil {
		return store.Run{}, err
	}
	e.log.Info().Str("run", r.ID).Str("cluster", r.Cluster).Str("procedure", r.Procedure).Str("requester", r.Requester).Msg("run started")
	e.publish(events.RunStarted, created, -1, req.Describe(), nil)
	e.launch(ctx, created, false, sent)
	return created, nil
}

// Clock is the engine's clock.
func (e *Engine) Clock() ports.Clock { return e.clock }

func (e *Engine) publish(kind events.Kind, r store.Run, step int, msg string, d *store.Decision) {
	e.bus.Publish(events.Event{Kind: kind, Run: r.Clone(), Step: step, Message: msg, Decision: d, At: e.clock.Now()})
}
