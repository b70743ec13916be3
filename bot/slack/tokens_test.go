package slack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
)

// frontWith makes a front on the harness's engine with other options.
func (h *harness) frontWith(edit func(*Options)) *Front {
	h.t.Helper()
	o := h.opts
	edit(&o)
	disp, err := bot.New(bot.Options{Config: h.cfg, Engine: h.eng, Log: zerolog.Nop()})
	if err != nil {
		h.t.Fatal(err)
	}
	f, err := New(o, disp, h.eng, zerolog.New(&h.logs))
	if err != nil {
		h.t.Fatal(err)
	}
	return f
}

// serve's token check: a bad, expired or swapped token stops it with a
// message naming the token and what is wrong.
func TestTokenCheck(t *testing.T) {
	h := newHarness(t, "socket", func(s *setup) {
		s.noFront = true
		s.cfg.Slack.BotTokenEnv, s.cfg.Slack.AppTokenEnv = "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"
	})
	tests := []struct {
		name            string
		bot, app        string
		authErr, appErr string
		want            string
	}{
		{"valid", "xoxb-ok", "xapp-ok", "", "", ""},
		{"bad bot token", "xoxb-bad", "xapp-ok", "invalid_auth", "", "slack.bot_token_env (SLACK_BOT_TOKEN): Slack refused the bot token: invalid_auth (not a valid token"},
		{"expired bot token", "xoxb-old", "xapp-ok", "token_expired", "", "slack.bot_token_env (SLACK_BOT_TOKEN): Slack refused the bot token: token_expired (expired"},
		{"revoked app token", "xoxb-ok", "xapp-old", "", "token_revoked", "slack.app_token_env (SLACK_APP_TOKEN): Slack refused the app-level token: token_revoked (revoked"},
		{"swapped tokens", "xapp-ok", "xoxb-ok", "", "", "slack.bot_token_env (SLACK_BOT_TOKEN) holds an app-level token (xapp-…), not the bot token (xoxb-…): are the two tokens swapped?"},
		{"app token in both", "xoxb-ok", "xoxb-ok", "", "", "slack.app_token_env (SLACK_APP_TOKEN) holds a bot token (xoxb-…)"},
		{"not a token", "hunter2", "xapp-ok", "", "", "slack.bot_token_env (SLACK_BOT_TOKEN): not a bot token (expected xoxb-…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.fs.mu.Lock()
			h.fs.authErr, h.fs.appAuthErr = tt.authErr, tt.appErr
			h.fs.mu.Unlock()
			f := h.frontWith(func(o *Options) { o.BotToken, o.AppToken = tt.bot, tt.app })
			err := f.CheckTokens(context.Background())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckTokens: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckTokens: %v\nwant %q", err, tt.want)
			}
			for _, secret := range []string{tt.bot, tt.app} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a token: %v", err)
				}
			}
		})
	}
}

// A token revoked while serving: Socket Mode stops with the reason, not
// in an endless reconnect.
func TestSocketModeStopsOnRevokedToken(t *testing.T) {
	h := newHarness(t, "socket", func(s *setup) { s.noFront = true })
	f := h.frontWith(func(*Options) {})
	if err := f.CheckTokens(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.fs.mu.Lock()
	h.fs.appAuthErr = "token_revoked"
	h.fs.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "slack.app_token_env: socket mode: Slack refused the app-level token: token_revoked") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("socket mode retries a revoked token for ever")
	}
}

// A Slack API whose certificate cannot be trusted is not retried.
func TestUntrustedCertificate(t *testing.T) {
	h := newHarness(t, "http", func(s *setup) { s.noFront = true })
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	f := h.frontWith(func(o *Options) { o.APIURL = tlsSrv.URL + "/api/" })
	began := time.Now()
	err := f.CheckTokens(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the TLS certificate of the Slack API ("+tlsSrv.URL+"/api/) is not trusted") {
		t.Fatalf("CheckTokens: %v", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("took %s: a certificate error was retried", d)
	}
}
