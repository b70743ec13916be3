package slack

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
)

// FromConfig builds the front of cfg with the tokens its slack block
// names; they are read here and never logged. opts brings the rest
// (Replay; APIURL and SocketGrace in tests); its Config and tokens are
// set here.
func FromConfig(cfg *config.Config, opts Options, disp *bot.Dispatcher, eng Engine, log zerolog.Logger) (*Front, error) {
	sc := cfg.Slack
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
	opts.Config, opts.BotToken, opts.AppToken, opts.SigningSecret = cfg, botToken, appToken, signing
	return New(opts, disp, eng, log)
}

// Check is Slack's line of `config check --connect`: whether the bot
// token works and, in socket mode, whether the app-level token may open
// a connection. It changes nothing.
func Check(ctx context.Context, cfg *config.Config, apiURL string) (string, error) {
	botToken, err := config.Secret("slack.bot_token_env", cfg.Slack.BotTokenEnv)
	if err != nil {
		return "", err
	}
	appToken, err := config.Secret("slack.app_token_env", cfg.Slack.AppTokenEnv)
	if err != nil {
		return "", err
	}
	if apiURL == "" {
		apiURL = cfg.Slack.APIURL
	}
	var opts []slack.Option
	if apiURL != "" {
		opts = append(opts, slack.OptionAPIURL(apiURL))
	}
	if appToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(appToken))
	}
	api := slack.New(botToken, opts...)
	who, err := api.AuthTestContext(ctx)
	if err != nil {
		return "", fmt.Errorf("bot token: auth.test: %s", errorText(err))
	}
	detail := fmt.Sprintf("bot %s (%s) in %s", who.User, who.UserID, who.Team)
	if cfg.Slack.Mode == "socket" {
		if _, _, err := api.StartSocketModeContext(ctx); err != nil {
			return "", fmt.Errorf("app-level token: apps.connections.open: %s", errorText(err))
		}
		detail += "; socket mode may connect"
	}
	return detail, nil
}
