package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

const signingSecret = "app-test-signing-secret"

// testConfig writes a configuration whose cluster's Docker engine is
// unreachable: nothing in these tests may need it.
func testConfig(t *testing.T, listen string) (*config.Config, string) {
	return testConfigWith(t, listen, fakeSlackAPI(t))
}

// fakeSlackAPI answers auth.test as Slack does: the test bot token is a
// bot's, a revoked one is refused.
func fakeSlackAPI(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if tok == "" {
			tok = r.Form.Get("token")
		}
		switch {
		case r.URL.Path != "/auth.test":
			fmt.Fprint(w, `{"ok":false,"error":"unknown_method"}`)
		case tok == "xoxb-app-test":
			fmt.Fprint(w, `{"ok":true,"user":"nocobot","user_id":"UBOT","team":"T","bot_id":"B1"}`)
		default:
			fmt.Fprint(w, `{"ok":false,"error":"token_revoked"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func testConfigWith(t *testing.T, listen, apiURL string) (*config.Config, string) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "n.db")
	body := fmt.Sprintf(`
store: {path: %s}
slack: {mode: http, bot_token_env: NOCOBOT_APPTEST_BOT, signing_secret_env: NOCOBOT_APPTEST_SIGNING, listen: %q, api_url: %q}
audit: {retention: 720h}
clusters:
  - name: prod
    slack: {channel: CPROD}
    docker: {host: "unix:///nonexistent/docker.sock"}
    nodes: {labels: {com.docker.compose.service: app}}
    load_balancer: {type: none}
    backup: {destination: %s, database: {container: db, name: nocobase}}
`, dbPath, listen, apiURL, filepath.Join(dir, "backups"))
	p := filepath.Join(dir, "nocobot.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dbPath
}

func slashCommand(t *testing.T, addr, user, channel, text string) {
	body := url.Values{"command": {"/nocobase"}, "text": {text}, "user_id": {user}, "channel_id": {channel}, "team_id": {"T1"}}.Encode()
	stamp := fmt.Sprint(time.Now().Unix())
	m := hmac.New(sha256.New, []byte(signingSecret))
	fmt.Fprintf(m, "v0:%s:%s", stamp, body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/slack/commands", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(m.Sum(nil)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("slash command: %s", resp.Status)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Slack endpoint never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
		req.Body, _ = req.GetBody()
	}
}

// Serve runs the whole bot: it prunes the audit log to its retention,
// answers a slash command through the dispatcher (audited), and stops
// cleanly when its context ends.
func TestServeLifecycle(t *testing.T) {
	t.Setenv("NOCOBOT_APPTEST_BOT", "xoxb-app-test")
	t.Setenv("NOCOBOT_APPTEST_SIGNING", signingSecret)
	addr := testenv.FreeAddr(t)
	cfg, dbPath := testConfig(t, addr)

	// An entry older than the retention, written before the bot starts.
	pre, err := sqlite.Open(context.Background(), dbPath, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	old := store.AuditEntry{At: time.Now().Add(-40 * 24 * time.Hour), User: "UOLD", Via: "slack", Action: "/nocobase status", Outcome: "ok"}
	if err := pre.AppendAudit(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	pre.Close()

	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, "test") }()

	slashCommand(t, addr, "USOMEONE", "CPROD", "status")
	deadline := time.Now().Add(10 * time.Second)
	var got []store.AuditEntry
	for time.Now().Before(deadline) {
		got, err = a.Store.Audit(context.Background(), store.AuditQuery{})
		if err == nil && len(got) == 1 && got[0].User == "USOMEONE" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != 1 || got[0].Action != "/nocobase status" || got[0].Outcome != "ok" || got[0].Channel != "CPROD" {
		t.Fatalf("audit log: %+v (want the old entry pruned and the status command recorded)", got)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the Slack endpoint still listens after Serve returned")
	}
}

func TestServeNeedsTheBotToken(t *testing.T) {
	cfg, _ := testConfig(t, testenv.FreeAddr(t))
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = a.Serve(context.Background(), "test")
	if err == nil || !strings.Contains(err.Error(), "NOCOBOT_APPTEST_BOT") && !strings.Contains(err.Error(), "bot_token_env") {
		t.Fatalf("Serve without a token: %v", err)
	}
}

// A revoked bot token stops serve at once with a message naming the
// token and what is wrong, before anything listens.
func TestServeStopsOnARefusedToken(t *testing.T) {
	t.Setenv("NOCOBOT_APPTEST_BOT", "xoxb-revoked")
	t.Setenv("NOCOBOT_APPTEST_SIGNING", signingSecret)
	addr := testenv.FreeAddr(t)
	cfg, _ := testConfig(t, addr)
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	done := make(chan error, 1)
	go func() { done <- a.Serve(context.Background(), "test") }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("serve went on with a revoked token")
	}
	want := "slack.bot_token_env (NOCOBOT_APPTEST_BOT): Slack refused the bot token: token_revoked (revoked: reinstall the app"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Serve: %v\nwant it to contain %q", err, want)
	}
	if strings.Contains(err.Error(), "xoxb-revoked") {
		t.Fatal("the error shows the token")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the Slack endpoint listens although serve stopped")
	}
}

// New builds every part from the configuration without contacting the
// clusters; the engine knows them and the dispatcher resolves them.
func TestNewBuildsWithoutContactingClusters(t *testing.T) {
	cfg, _ := testConfig(t, testenv.FreeAddr(t))
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if names := a.Engine.ClusterNames(); len(names) != 1 || names[0] != "prod" {
		t.Fatalf("clusters: %v", names)
	}
	if c, err := a.Dispatcher.ResolveCluster("", bot.Caller{}); err != nil || c != "prod" {
		t.Fatalf("resolve: %q, %v", c, err)
	}
	if _, err := a.Dispatcher.ResolveCluster("staging", bot.Caller{}); err == nil || !strings.Contains(err.Error(), `unknown cluster "staging" (known: prod)`) {
		t.Fatalf("resolve staging: %v", err)
	}
}
