package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack/slacktest"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/internal/testenv"
)

// loadConfig writes body (with %[1]s the temp folder) and loads it.
func loadConfig(t *testing.T, body string) *config.Config {
	dir := t.TempDir()
	p := filepath.Join(dir, "nocobot.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(body, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// get fetches a URL, retrying while nothing listens yet.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve runs a.Serve until the returned stop is called, which checks it
// ended without error.
func serve(t *testing.T, a *app.App) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, "test") }()
	return func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Serve did not stop")
		}
	}
}

// With slack.mode off serve needs no token and no channel: the engine
// and the windows run, the operations endpoint answers, and it stops.
func TestServeWithoutSlack(t *testing.T) {
	addr := testenv.FreeAddr(t)
	cfg := loadConfig(t, `
store: {path: %[1]s/n.db}
slack: {mode: off}
http: {listen: "`+addr+`"}
clusters:
`+unreachableProd)
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	stop := serve(t, a)
	if code, body := get(t, "http://"+addr+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 || body != "store: ok\nslack: off\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	code, body := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{`nocobot_runs_total{cluster="prod",outcome="succeeded",procedure="upgrade"} 0`, "nocobot_window_start_lateness_seconds_count 0", "go_goroutines "} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics: %d, lacks %q:\n%.2000s", code, want, body)
		}
	}
	stop()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the operations endpoint still listens after Serve returned")
	}
}

// With Slack on, /readyz asks Slack whether the bot token works.
func TestReadyzAsksSlack(t *testing.T) {
	// auth.test answers for a bot token, as serve's token check wants.
	slackAPI := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"ok":true,"user":"nocobot","user_id":"UBOT","team":"T","bot_id":"B1"}`)
		})
	})
	slackAPI.Start()
	defer slackAPI.Stop()
	t.Setenv("NOCOBOT_OPSTEST_BOT", "xoxb-ops-test")
	t.Setenv("NOCOBOT_OPSTEST_SIGNING", signingSecret)
	addr, slackAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := loadConfig(t, `
store: {path: %[1]s/n.db}
slack: {mode: http, bot_token_env: NOCOBOT_OPSTEST_BOT, signing_secret_env: NOCOBOT_OPSTEST_SIGNING, listen: "`+slackAddr+`"}
http: {listen: "`+addr+`"}
clusters:
`+unreachableProd)
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SlackAPIURL = slackAPI.GetAPIURL()
	stop := serve(t, a)
	defer stop()
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 || body != "store: ok\nslack: ok\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
}

// A serve whose secrets are missing names every one of them at once.
func TestServeNamesEveryMissingSecret(t *testing.T) {
	cfg := loadConfig(t, `
store: {path: %[1]s/n.db}
slack: {mode: socket, bot_token_env: NOCOBOT_OPSTEST_NOBOT, app_token_env: NOCOBOT_OPSTEST_NOAPP}
clusters:
`+unreachableProd)
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = a.Serve(context.Background(), "test")
	if err == nil || !strings.Contains(err.Error(), "NOCOBOT_OPSTEST_NOBOT") || !strings.Contains(err.Error(), "NOCOBOT_OPSTEST_NOAPP") {
		t.Fatalf("Serve: %v", err)
	}
}

// unreachableProd is the cluster of these tests' configurations: its
// Docker engine is not there, so the app starts and a run's preflight
// fails, which is all they need of a cluster.
const unreachableProd = `  - name: prod
    slack: {channel: CPROD}
    docker: {host: "unix:///nonexistent/docker.sock"}
    nodes: {labels: {com.docker.compose.service: app}}
    load_balancer: {type: none}
    backup: {destination: %[1]s/backups, database: {container: db, name: nocobase}}
`
