package app

import (
	"context"
	"errors"

	slackfront "github.com/nocobot/nocobot/bot/slack"
	"github.com/nocobot/nocobot/config"
)

// Serve runs the engine, the Slack front, the maintenance windows and
// the audit log's pruning until ctx ends or one of them fails; it then
// stops the others and returns the first failure.
func (a *App) Serve(ctx context.Context, version string) error {
	front, err := a.slackFront()
	if err != nil {
		return err
	}
	// A token Slack refuses stops serve here, with the token named,
	// rather than in an endless reconnect.
	if err := front.CheckTokens(ctx); err != nil {
		return err
	}
	a.Log.Info().Str("version", version).Str("mode", a.Config.Slack.Mode).Strs("clusters", a.Engine.ClusterNames()).Msg("nocobot serving")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := []func(context.Context) error{a.Engine.Run, front.Run, a.Scheduler.Run}
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
	opts := slackfront.Options{Config: a.Config, BotToken: botToken, AppToken: appToken, SigningSecret: signing, Replay: a.Store}
	return slackfront.New(opts, a.Dispatcher, a.Engine, a.Log)
}
