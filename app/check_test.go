package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/internal/testenv"
)

func writeFile(t *testing.T, dir, body string) string {
	p := filepath.Join(dir, "nocobot.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// config check names every missing secret and every cluster without a
// channel, one line each, and changes nothing.
func TestConfigCheckListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, fmt.Sprintf(`
store: {path: %[1]s/n.db}
slack: {mode: socket, bot_token_env: NOCOBOT_CHK_BOT}
clusters:
  - name: prod
    nodes: {labels: {app: nocobase}}
    load_balancer: {type: none}
    backup: {destination: %[1]s/b, database: {container: db, name: nocobase, password_env: NOCOBOT_CHK_DB}}
  - name: staging
    slack: {channel: CSTAGING}
    nodes: {labels: {app: staging}}
    load_balancer: {type: none}
    backup: {destination: %[1]s/b2, database: {container: db2, name: nocobase}}
`, dir))
	var out, errOut bytes.Buffer
	err := app.CheckConfig(context.Background(), conf, app.CheckOptions{}, &out, &errOut)
	if err == nil || err.Error() != conf+": 4 problems (each on a line above)" {
		t.Fatalf("error: %v", err)
	}
	want := []string{
		conf + ": slack.bot_token_env: environment variable NOCOBOT_CHK_BOT is not set",
		conf + ": slack.app_token_env: required while slack.mode is socket",
		conf + ": clusters (prod).backup.database.password_env: environment variable NOCOBOT_CHK_DB is not set",
		conf + ": clusters (prod).slack.channel: not set",
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) != len(want) || out.Len() != 0 {
		t.Fatalf("stdout %q, stderr:\n%s", out.String(), errOut.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want %q…", i, lines[i], w)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("config check left files behind: %v", entries)
	}
}

// config check --connect asks every outside system once, with a timeout,
// one line each: a real Docker engine with a running and a stopped node,
// a local Slack, a probe URL showing the maintenance page, a database
// container that does not exist, and a cluster whose engine is not there.
func TestConfigCheckConnect(t *testing.T) {
	host := testenv.DockerHost(t)
	img := testenv.NodeImage(t, host, "1.7.13")
	cluster := fmt.Sprintf("chk-%d", os.Getpid())
	up := testenv.RunNode(t, host, testenv.NodeSpec{Name: cluster + "-app-1", Image: img,
		Labels: map[string]string{"nocobot.test.cluster": cluster}, Env: []string{"NOCOBASE_BOOT_TIME=1ms"}})
	testenv.RunNode(t, host, testenv.NodeSpec{Name: cluster + "-app-2", Image: img, Created: true,
		Labels: map[string]string{"nocobot.test.cluster": cluster}})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(up.URL + "/api/__health_check"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the running node never became healthy")
		}
	}
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer lb.Close()
	slackAPI := slacktest.NewTestServer()
	slackAPI.Start()
	defer slackAPI.Stop()
	t.Setenv("NOCOBOT_CHK_BOT", "xoxb-check")
	t.Setenv("NOCOBOT_CHK_APP", "xapp-check")

	dir := testenv.TempDir(t)
	conf := writeFile(t, dir, fmt.Sprintf(`
store: {path: %[1]s/n.db}
slack: {mode: socket, bot_token_env: NOCOBOT_CHK_BOT, app_token_env: NOCOBOT_CHK_APP}
clusters:
  - name: prod
    slack: {channel: CPROD}
    docker: {host: %[2]q}
    nodes: {labels: {nocobot.test.cluster: %[3]s}}
    load_balancer: {type: none, probe_url: %[4]q}
    backup: {destination: %[1]s/b, database: {container: %[3]s-db, name: nocobase}}
  - name: staging
    slack: {channel: CSTAGING}
    docker: {host: "unix:///nonexistent/docker.sock"}
    nodes: {labels: {app: staging}}
    load_balancer: {type: none}
    backup: {destination: %[1]s/b2, database: {container: db2, name: nocobase}}
`, dir, host, cluster, lb.URL+"/"))
	var out, errOut bytes.Buffer
	start := time.Now()
	err := app.CheckConfig(context.Background(), conf, app.CheckOptions{Connect: true, Timeout: 5 * time.Second, SlackAPIURL: slackAPI.GetAPIURL()}, &out, &errOut)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "2 of 7 checks failed") {
		t.Fatalf("error: %v\n%s", err, out.String())
	}
	want := []string{
		"store: ok: embedded " + dir + "/n.db (created at the first serve or run)",
		"slack: ok: bot ", // slacktest's bot
		fmt.Sprintf("docker (prod): ok: 2 nodes: %[1]s-app-1, %[1]s-app-2", cluster),
		"backup and database (prod): failed: ",
		fmt.Sprintf("nocobase (prod) %s-app-1: ok: %s healthy", cluster, up.URL),
		fmt.Sprintf("nocobase (prod) %s-app-2: skipped: the node is stopped", cluster),
		"load balancer probe (prod): ok: " + lb.URL + "/ answers HTTP 503",
		"docker (staging): failed: ",
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want %q…", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], "socket mode may connect") || !strings.Contains(lines[3], cluster+"-db") {
		t.Errorf("slack or database line lacks the detail:\n%s", out.String())
	}
	if took > 30*time.Second {
		t.Errorf("config check --connect took %s", took)
	}
	if _, err := os.Stat(filepath.Join(dir, "n.db")); err == nil {
		t.Error("config check --connect created the store")
	}
}
