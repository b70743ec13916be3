package app_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// buildNocobot builds the nocobot command into a temporary folder.
func buildNocobot(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "nocobot")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nocobot/nocobot")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// withoutSlack is the environment minus anything Slack: serve must not
// need it.
func withoutSlack() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLACK_") {
			env = append(env, kv)
		}
	}
	return env
}

// `nocobot serve` with slack.mode off on a real Docker engine: a
// maintenance window starts its run there, a `nocobot run` in another
// process works on the same store meanwhile, the terminal's history and
// status read both, /metrics counts the window's run, and SIGTERM stops
// serve with exit 0.
func TestServeWithoutSlackRunsAWindow(t *testing.T) {
	host := testenv.DockerHost(t)
	img := testenv.NodeImage(t, host, "1.7.13")
	cluster := fmt.Sprintf("slackoff-%d", os.Getpid())
	for i := 1; i <= 2; i++ {
		testenv.RunNode(t, host, testenv.NodeSpec{
			Name: fmt.Sprintf("%s-app-%d", cluster, i), Image: img, Created: true,
			Labels: map[string]string{"nocobot.test.cluster": cluster}, Env: []string{"NOCOBASE_BOOT_TIME=300ms"},
		})
	}
	bin := buildNocobot(t)
	dir := testenv.TempDir(t)
	addr := testenv.FreeAddr(t)
	conf := filepath.Join(dir, "nocobot.yaml")
	body := fmt.Sprintf(`
store: {path: %[1]s/n.db}
slack: {mode: off}
access: {trust_terminal: true}
http: {listen: %[2]q}
clusters:
  - name: prod
    docker: {host: %[3]q}
    nodes: {labels: {nocobot.test.cluster: %[4]s}}
    load_balancer: {type: none}
    backup: {destination: %[1]s/backups, database: {container: db, name: nocobase}}
`, dir, addr, host, cluster)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// A window whose next start is a few seconds away, as one added a
	// week ago would be now.
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "n.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.PutWindow(context.Background(), store.Window{ID: "soon", Cluster: "prod", Spec: "0 3 * * *", TZ: "UTC", Command: "start",
		Duration: time.Hour, CreatedBy: "test", Created: now, NextStart: now.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var logs bytes.Buffer
	srv := exec.Command(bin, "serve", "--config", conf)
	srv.Env, srv.Stderr = withoutSlack(), &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
		}
	}()
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 || body != "store: ok\nslack: off\n" {
		t.Fatalf("/readyz: %d %q\n%s", code, body, logs.String())
	}

	nocobot := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--config", conf, "--log-level", "error")...)
		cmd.Env = withoutSlack()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The window's run, driven by serve.
	var history string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		history, _ = nocobot("history")
		if strings.Contains(history, "succeeded") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the window's run did not succeed within 60 s:\n%s\nserve:\n%s", history, logs.String())
		}
	}
	if !strings.Contains(history, "scheduler") {
		t.Errorf("the run was not started by the window:\n%s", history)
	}
	// A run at a terminal in another process, while serve runs.
	if out, err := nocobot("run", "start"); err != nil {
		t.Fatalf("nocobot run start: %v\n%s", err, out)
	}
	history, _ = nocobot("history")
	if n := strings.Count(history, "succeeded"); n != 2 {
		t.Fatalf("history after the terminal's run (want 2 succeeded):\n%s", history)
	}
	if out, err := nocobot("status"); err != nil || strings.Count(out, "running") < 2 {
		t.Errorf("status: %v\n%s", err, out)
	}
	_, metricsText := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`nocobot_runs_total{cluster="prod",outcome="succeeded",procedure="start"} 1`, // the window's; the terminal's ran elsewhere
		`nocobot_window_events_total{kind="started"} 1`,
		"nocobot_window_start_lateness_seconds_count 1",
		`nocobot_step_duration_seconds_count{cluster="prod",outcome="done",procedure="start",step="start-first"} 1`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve ended with %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "serving without Slack") {
		t.Errorf("serve's log does not say it runs without Slack:\n%s", logs.String())
	}
}
