package app

import (
	"context"
	"errors"
	"strings"

	slackfront "github.com/nocobot/nocobot/bot/slack"
	"github.com/nocobot/nocobot/config"
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
	// A cluster without a channel still runs; its runs show at the terminal.
	if err := a.Config.CheckChannels(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			a.Log.Warn().Msg(line)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var parts []func(context.Context) error
	var slackReady func(context.Context) error
	if a.Config.Slack.On() {
		front, err := a.slackFront()
		if err != nil {
			return err
		}
		// A token Slack refuses stops serve here, with the token named,
		// rather than in an endless reconnect.
		if err := front.CheckTokens(ctx); err != nil {
			return err
		}
		front.ObserveAPIErrors(a.Metrics.SlackAPIError)
		parts = append(parts, front.Run)
		slackReady = a.slackCheck(front.SocketDown)
	} else {
		a.Log.Info().Msg("serving without Slack (slack.mode: off): people use the terminal commands on this store")
	}
	if a.Config.HTTP.Listen != "" {
		ops, err := a.listenOps(slackReady)
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

// slackFront builds the Slack front with the tokens the configuration
// names; they are read here and never logged.
func (a *App) slackFront() (*slackfront.Front, error) {
	sc := a.Config.Slack
	botToken, err := config.Secret("slack.bot_token_env", sc.BotTokenEnv)
	if err != nil {
		return nil, err
	}
	if botToken == "" {
		return nil, errors.New("slack.bot_token_env: required to serve (the variable holding the xoxb- token)")
	}
	appToken, err := config.Secret("slack.app_token_env", sc.AppTokenEnv)
	if err != nil {
		return nil, err
	}
	signing, err := config.Secret("slack.signing_secret_env", sc.SigningSecretEnv)
	if err != nil {
		return nil, err
	}
	opts := slackfront.Options{Config: a.Config, BotToken: botToken, AppToken: appToken, SigningSecret: signing, APIURL: a.SlackAPIURL, Replay: a.Store}
	return slackfront.New(opts, a.Dispatcher, a.Engine, a.Log)
}
