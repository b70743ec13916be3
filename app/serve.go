package app

import (
	"context"
	"strings"

	"github.com/nocobot/nocobot/bot"
	slackfront "github.com/nocobot/nocobot/bot/slack"
)

// Serve runs the engine, the Slack front (unless slack.mode is off), the
// maintenance windows, the operations endpoint (http.listen) and the
// audit log's pruning until ctx ends or one of them fails; it then stops
// the others and returns the first failure.
func (a *App) Serve(ctx context.Context, version string) error {
	if err := a.Config.CheckSecrets(); err != nil {
		return err
	}
	hooks, err := a.notifier(version)
	if err != nil {
		return err
	}
	for _, w := range a.Config.WarningLines("") {
		a.Log.Warn().Msg(w)
	}
	// A cluster without a channel still runs; its runs show at the terminal.
	if err := a.Config.CheckFronts(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			a.Log.Warn().Msg(line)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var parts []func(context.Context) error
	fronts, off, err := a.fronts(ctx)
	if err != nil {
		return err
	}
	for _, f := range fronts {
		parts = append(parts, f.Run)
	}
	if a.Config.HTTP.Listen != "" {
		ops, err := a.listenOps(fronts, off)
		if err != nil {
			return err
		}
		parts = append(parts, ops.run)
	}
	// Subscribed before the engine starts, so no run goes uncounted or
	// untold.
	sub, hsub := a.Engine.Subscribe(), a.Engine.Subscribe()
	watched, told := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		a.Metrics.Watch(ctx, sub)
	}()
	go func() {
		defer close(told)
		hooks.Watch(ctx, hsub)
	}()
	parts = append(parts, a.Engine.Run, a.Scheduler.Run)
	a.Log.Info().Str("version", version).Str("mode", a.Config.Slack.Mode).Str("http", a.Config.HTTP.Listen).
		Strs("clusters", a.Engine.ClusterNames()).Msg("nocobot serving")
	errs := make(chan error, len(parts))
	for _, run := range parts {
		go func() { errs <- run(ctx) }()
	}
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		pruneAudit(ctx, a.Store, a.Config.Audit.Retention.D(), a.Log)
	}()
	var first error
	for range parts {
		if err := <-errs; err != nil && first == nil && ctx.Err() == nil {
			first = err
			cancel()
		}
	}
	cancel()
	<-pruned
	<-watched
	<-told
	return first
}

// fronts builds the chat fronts the configuration turns on, each checked
// before serving; off names those it leaves off.
func (a *App) fronts(ctx context.Context) (on []bot.Front, off []string, err error) {
	if !a.Config.Slack.On() {
		a.Log.Info().Msg("serving without Slack (slack.mode: off): people use the terminal commands on this store")
		return nil, []string{"slack"}, nil
	}
	front, err := slackfront.FromConfig(a.Config, slackfront.Options{APIURL: a.SlackAPIURL, SocketGrace: a.SocketGrace, Replay: a.Store}, a.Dispatcher, a.Engine, a.Log)
	if err != nil {
		return nil, nil, err
	}
	// A token Slack refuses stops serve here, with the token named,
	// rather than in an endless reconnect.
	if err := front.CheckTokens(ctx); err != nil {
		return nil, nil, err
	}
	apiErrors := slackfront.NewAPIErrorCounter()
	if err := a.Metrics.Register(apiErrors.Collector()); err != nil {
		return nil, nil, err
	}
	front.ObserveAPIErrors(apiErrors.Count)
	return []bot.Front{front}, nil, nil
}
