// Package app builds nocobot from its configuration and runs it: it opens
// the store, connects every cluster to its adapters, makes the engine,
// the maintenance window scheduler, the dispatcher and the fronts, and
// stops them in order. Package main parses the command line and calls it.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/metrics"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/schedule"
	"github.com/nocobot/nocobot/store"
)

// App is nocobot built from one configuration, not yet running.
type App struct {
	Config    *config.Config
	Log       zerolog.Logger
	Store     store.Store
	Engine    *procedures.Engine
	Scheduler *schedule.Scheduler
	// Events carries the runs' and the windows' events to the fronts.
	Events     *events.Bus
	Dispatcher *bot.Dispatcher
	// Metrics counts what the engine, the backups and Slack do; Serve
	// publishes it on http.listen.
	Metrics *metrics.Metrics
	// SlackAPIURL overrides Slack's Web API URL (tests: a local server).
	SlackAPIURL string
	// SocketGrace is how long Socket Mode may be down before /readyz
	// fails; default 30 s (tests: shorter).
	SocketGrace time.Duration

	closeClusters func()
}

// New opens the store and builds the clusters, the engine, the scheduler
// and the dispatcher. It contacts no cluster: a Docker engine that is
// down shows up when used. Close releases what New opened.
func New(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*App, error) {
	st, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	m := metrics.New(cfg.ClusterNames()...)
	m.WatchStore(st)
	clusters, closeClusters, err := buildClusters(cfg, st, m.Backups, log, config.Secret)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	a := &App{Config: cfg, Log: log, Store: st, Metrics: m, closeClusters: closeClusters}
	if err := a.build(clusters); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	return a, nil
}

func (a *App) build(clusters []*procedures.Cluster) error {
	// One bus: the engine's runs and the scheduler's windows reach the
	// fronts through it.
	a.Events = events.NewBus()
	eng, err := procedures.New(procedures.Options{Store: a.Store, Clusters: clusters, Log: a.Log, Events: a.Events})
	if err != nil {
		return err
	}
	a.Engine = eng
	if a.Scheduler, err = newScheduler(a.Config, a.Store, eng, a.Events, a.Log); err != nil {
		return err
	}
	// A terminal's operator passes the access rules only when the
	// configuration says so (access.trust_terminal); otherwise they are
	// whom access.terminal_users maps them to.
	a.Dispatcher, err = bot.New(bot.Options{Config: a.Config, Engine: eng, Scheduler: a.Scheduler, Log: a.Log, TrustTerminal: a.Config.Access.TrustTerminal})
	return err
}

// Close closes the clusters' connections and the store.
func (a *App) Close() error {
	if a.closeClusters != nil {
		a.closeClusters()
	}
	return a.Store.Close()
}
