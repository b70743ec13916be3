package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"
)

// CheckTokens asks Slack, before serving, whether the tokens work: the
// bot token with auth.test, the app-level token (Socket Mode) with
// apps.connections.open. A token Slack refuses, or a certificate that
// cannot be trusted, is an error naming the token and what is wrong;
// Slack being unreachable is only logged (the runs go on without it).
func (f *Front) CheckTokens(ctx context.Context) error {
	bot := tokenName("slack.bot_token_env", f.cfg.Slack.BotTokenEnv)
	app := tokenName("slack.app_token_env", f.cfg.Slack.AppTokenEnv)
	switch {
	case strings.HasPrefix(f.opts.BotToken, "xapp-"):
		return fmt.Errorf("%s holds an app-level token (xapp-…), not the bot token (xoxb-…): are the two tokens swapped?", bot)
	case !strings.HasPrefix(f.opts.BotToken, "xoxb-"):
		return fmt.Errorf("%s: not a bot token (expected xoxb-…, from OAuth & Permissions after installing the app)", bot)
	}
	var who *slack.AuthTestResponse
	err := f.calls.do(ctx, "auth.test", 3, func(ctx context.Context) error {
		var err error
		who, err = f.api.AuthTestContext(ctx)
		return err
	})
	if err := f.tokenRefused(bot, "bot token", err); err != nil {
		return err
	}
	if err == nil {
		if who.BotID == "" {
			return fmt.Errorf("%s: Slack says this token is user %s's, not a bot's: use the Bot User OAuth Token (xoxb-…)", bot, who.User)
		}
		f.botUser.Store(who.UserID)
		f.botNameV.Store(who.User)
		f.log.Info().Str("bot_user", who.UserID).Str("team", who.Team).Msg("slack: bot token accepted")
	}
	if f.cfg.Slack.Mode == "http" {
		return nil
	}
	switch {
	case strings.HasPrefix(f.opts.AppToken, "xoxb-"):
		return fmt.Errorf("%s holds a bot token (xoxb-…), not the app-level token (xapp-…): are the two tokens swapped?", app)
	case !strings.HasPrefix(f.opts.AppToken, "xapp-"):
		return fmt.Errorf("%s: not an app-level token (expected xapp-…, from Basic Information → App-Level Tokens, scope connections:write)", app)
	}
	err = f.calls.do(ctx, "apps.connections.open", 3, func(ctx context.Context) error {
		_, _, err := f.api.StartSocketModeContext(ctx)
		return err
	})
	return f.tokenRefused(app, "app-level token", err)
}

func tokenName(field, env string) string {
	if env == "" {
		return field
	}
	return fmt.Sprintf("%s (%s)", field, env)
}

// tokenRefused turns a failed token check into the error that stops
// serve, or logs it when retrying later may help.
func (f *Front) tokenRefused(name, kind string, err error) error {
	if err == nil {
		return nil
	}
	if certificateError(err) {
		return fmt.Errorf("%s: the TLS certificate of the Slack API (%s) is not trusted: %w", name, f.apiURL(), err)
	}
	var pe permanentError
	code := slackError(err)
	switch {
	case authFails(code):
		return fmt.Errorf("%s: Slack refused the %s: %s", name, kind, explainRefusal(code))
	case errors.As(err, &pe):
		return fmt.Errorf("%s: the Slack API at %s cannot check the %s: %s (is slack.api_url right?)", name, f.apiURL(), kind, code)
	}
	f.log.Warn().Err(err).Str("token", name).Msg("slack: could not check the token (Slack unreachable?); going on")
	return nil
}

func (f *Front) apiURL() string {
	if f.opts.APIURL != "" {
		return f.opts.APIURL
	}
	return slack.APIURL
}

func explainRefusal(code string) string {
	switch code {
	case "invalid_auth", "invalid_token":
		return code + " (not a valid token for this workspace: mistyped, or of another app)"
	case "token_revoked":
		return code + " (revoked: reinstall the app and use its new token)"
	case "token_expired":
		return code + " (expired: token rotation is on; turn it off or refresh the token)"
	case "account_inactive":
		return code + " (the app was uninstalled or its workspace deactivated)"
	case "not_allowed_token_type":
		return code + " (the wrong kind of token: are the bot and app-level tokens swapped?)"
	case "not_authed":
		return code + " (no token was sent)"
	case "missing_scope":
		return code + " (the token lacks a scope: app-level tokens need connections:write)"
	}
	return code
}
