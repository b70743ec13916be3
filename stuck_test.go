package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// silentDocker is a Docker host that does not answer: a unix socket
// bound with nothing listening on it (connections are refused).
func silentDocker(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nocobot-dead-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "docker.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return "unix://" + path
}

// silentConfig is processConfig with one cluster, prod, on host.
func silentConfig(t *testing.T, host, extra string) string {
	t.Helper()
	dir := t.TempDir()
	body := fmt.Sprintf(`store: {path: %s}
%s
clusters:
  - name: prod
    slack: {channel: CPROD}
    docker: {host: %q}
    nodes: {labels: {com.docker.compose.service: app}}
    load_balancer: {type: none}
    backup: {destination: %s, database: {container: db, name: nocobase}}
`, filepath.Join(dir, "state", "n.db"), extra, host, filepath.Join(dir, "backups"))
	p := filepath.Join(dir, "nocobot.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// With the Docker engine silent, an upgrade fails its preflight and is
// left; nocobot cancel then takes the run (nobody drives it) and ends
// it at once, and the cluster is free for the next run. A run whose
// process was killed is taken once its lease lapses.
func TestCancelEndsAnUndrivenRun(t *testing.T) {
	conf := silentConfig(t, silentDocker(t), trusted)
	code, out, errs := nocobotx(t, nil, "run", "upgrade", "1.7.14", "--config", conf)
	m := runIDRe.FindStringSubmatch(out)
	if code != 5 || m == nil {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	id := m[1]
	began := time.Now()
	code, out, errs = nocobotx(t, nil, "cancel", id, "--config", conf)
	if code != 0 || !strings.Contains(out, "No other process drives run "+id+": this one takes it and drives the abort.") ||
		!strings.Contains(out, "aborted") || !strings.Contains(out, "Nothing was changed") {
		t.Fatalf("cancel: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("cancel ended the undriven run in %s", time.Since(began).Round(time.Millisecond))
	code, out, errs = nocobotx(t, nil, "run", "upgrade", "1.7.14", "--on-interrupt", "abort", "--config", conf)
	if code != 4 || strings.Contains(out+errs, "busy") || !strings.Contains(out, "Nothing was changed") {
		t.Fatalf("the next run: exit %d\n%s%s", code, out, errs)
	}

	// An abort asked for earlier where nothing drove the run (the shell
	// records it) is driven by the next cancel.
	id = leftRun(t, conf)
	sh := start(t, nil, "shell", "--config", conf)
	io.WriteString(sh.stdin, "cancel "+id+"\nexit\n")
	if c := sh.exit(t, 30*time.Second); c != 0 || !strings.Contains(sh.out.String(), "Abort requested for run "+id) {
		t.Fatalf("shell: exit %d\n%s%s", c, sh.out, sh.err)
	}
	code, out, errs = nocobotx(t, nil, "cancel", id, "--config", conf)
	if code != 0 || !strings.Contains(out, "An abort of run "+id+" was requested already.") || !strings.Contains(out, "aborted") {
		t.Fatalf("cancel after an earlier request: exit %d\n%s%s", code, out, errs)
	}

	p := start(t, nil, "run", "maintain", "--config", conf)
	id = runID(t, p)
	waitOut(t, p.out, "Choices:", 30*time.Second)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.exit(t, 10*time.Second)
	code, out, errs = nocobotx(t, nil, "cancel", id, "--config", conf)
	if code != 0 || !strings.Contains(out, "this one takes it and drives the abort") || !strings.Contains(out, "aborted") {
		t.Fatalf("cancel of a killed run: exit %d\n%s%s", code, out, errs)
	}
	_, out, _ = nocobotx(t, nil, "audit", "--run", id, "--config", conf)
	if !strings.Contains(out, "nocobot cancel "+id) {
		t.Fatalf("cancel not audited:\n%s", out)
	}
}

// leftRun starts a maintenance that fails its preflight (the Docker
// engine is silent) and leaves it; it returns the run's id.
func leftRun(t *testing.T, conf string) string {
	t.Helper()
	code, out, errs := nocobotx(t, nil, "run", "maintain", "--config", conf)
	m := runIDRe.FindStringSubmatch(out)
	if code != 5 || m == nil {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	return m[1]
}

// nocobot attach applies a decision recorded while no process drove the
// run before it reads any input, and with its input at an end it does
// what the decision asks instead of leaving: a retry runs the step again
// (then, asked again, the end of input leaves); an abort ends the run,
// at a terminal too, without asking about the end of input.
func TestAttachAppliesARecordedDecision(t *testing.T) {
	conf := silentConfig(t, silentDocker(t), trusted)
	id := leftRun(t, conf)
	if code, out, errs := nocobotx(t, nil, "decide", id, "retry", "--config", conf); code != 0 || !strings.Contains(out, "Recorded: Retry on run "+id) {
		t.Fatalf("decide: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := nocobotx(t, nil, "attach", id, "--config", conf)
	if code != 5 || !strings.Contains(out, "Already answered: Retry, chosen by terminal:") || !strings.Contains(out, "(attempt 2)") ||
		!strings.Contains(out, "The input ended: run "+id+" leaves") {
		t.Fatalf("attach after a recorded retry: exit %d\n%s%s", code, out, errs)
	}

	if code, out, errs := nocobotx(t, nil, "decide", id, "abort", "--config", conf); code != 0 {
		t.Fatalf("decide: exit %d\n%s%s", code, out, errs)
	}
	a := startPTY(t, "attach", id, "--config", conf)
	a.typeIn("\x04")
	if c := a.exit(t, 30*time.Second); c != 4 {
		t.Fatalf("attach after a recorded abort: exit %d\n%s", c, a.out)
	}
	// The engine attach starts may apply the abort before the follower
	// shows the question: then the run's end names who aborted instead of
	// "Already answered".
	if s := a.out.String(); !(strings.Contains(s, "Already answered: Abort") || strings.Contains(s, "Aborted by terminal:")) ||
		!strings.Contains(s, "aborted") || strings.Contains(s, "Choose a, l or k") {
		t.Fatalf("attach output:\n%s", s)
	}
}

// nocobot plan needs no secrets, the database URL included: a cluster
// whose database is given by backup.database.url_env plans with that
// variable unset.
func TestPlanWithADatabaseURL(t *testing.T) {
	conf := silentConfig(t, silentDocker(t), trusted)
	body, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	body = []byte(strings.Replace(string(body), "database: {container: db, name: nocobase}", "database: {url_env: NOCOBOT_PLAN_TEST_DB_URL}", 1))
	if err := os.WriteFile(conf, body, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := nocobotx(t, nil, "plan", "upgrade", "1.7.14", "--config", conf)
	if code != 0 || !strings.Contains(out, "Plan for the upgrade of prod") || !strings.Contains(out, "Back up database and storage") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errs)
	}
}

// One Docker engine that does not answer is said once in each message:
// the failed step's line says what failed, why and what to do; the
// question after it does not repeat it; status and traffic say it once;
// no internal shell command shows.
func TestOneFailureSaidOnce(t *testing.T) {
	host := silentDocker(t)
	sock := strings.TrimPrefix(host, "unix://")
	conf := silentConfig(t, host, trusted)
	body, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	body = []byte(strings.Replace(string(body), "load_balancer: {type: none}", "load_balancer: {type: nginx, container: lb, flag_path: /etc/nginx/maintenance.on}", 1))
	if err := os.WriteFile(conf, body, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []string{"cluster: list nodes", "list nodes: list nodes", "sh -c", "failed to connect", "Cannot connect", "exec "}
	check := func(what, text string, times int) {
		t.Helper()
		if n := strings.Count(text, sock); n != times {
			t.Errorf("%s names the Docker host %d times, want %d:\n%s", what, n, times, text)
		}
		for _, b := range bad {
			if strings.Contains(text, b) {
				t.Errorf("%s shows %q:\n%s", what, b, text)
			}
		}
	}
	code, out, errs := nocobotx(t, nil, "run", "upgrade", "1.7.14", "--on-interrupt", "abort", "--config", conf)
	if code != 4 {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	check("the run's output", out, 1)
	var question string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "? Run ") {
			question = l
		}
	}
	if !strings.Contains(question, "Nodes: unknown (for the same reason). Traffic: unknown (for the same reason).") {
		t.Errorf("question: %q", question)
	}
	if !strings.Contains(out, "does not answer") || !strings.Contains(out, "correct the cluster's docker.host") {
		t.Errorf("the failure does not say why and what to do:\n%s", out)
	}
	_, out, errs = nocobotx(t, nil, "status", "--config", conf)
	check("status", out+errs, 1)
	code, out, errs = nocobotx(t, nil, "traffic", "off", "--config", conf)
	if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Fatalf("traffic off: exit %d\n%s%s", code, out, errs)
	}
	check("traffic off", errs, 1)
}
