package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func nocobot(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

const cfg = `
store: {path: %s}
slack: {mode: "off"}
clusters:
  - name: prod
    docker: {host: "unix:///nonexistent/docker.sock"}
    nodes: {labels: {com.docker.compose.service: app}}
    load_balancer: {type: none}
    backup: {destination: %s, database: {container: db, name: nocobase}}
`

func writeConfig(t *testing.T) string {
	dir := t.TempDir()
	p := filepath.Join(dir, "nocobot.yaml")
	body := strings.Replace(strings.Replace(cfg, "%s", filepath.Join(dir, "n.db"), 1), "%s", filepath.Join(dir, "backups"), 1)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLI(t *testing.T) {
	conf := writeConfig(t)
	// The secrets the example names, so that its check passes.
	for _, v := range []string{"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "NOCOBASE_API_KEY", "PROD_DB_PASSWORD"} {
		t.Setenv(v, "set-for-the-test")
	}
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"version"}, 0, "nocobot ", ""},
		{[]string{"config", "check", "--config", conf}, 0, "OK (1 clusters: prod)", ""},
		{[]string{"config", "check", "--config", "deploy/nocobot.example.yaml"}, 0, "OK", ""},
		{[]string{"config", "check", "--config", "/nonexistent.yaml"}, 1, "", "no such file"},
		{[]string{"history", "--config", conf}, 0, "No runs yet.", ""},
		{[]string{"plan", "upgrade", "1.7.14", "--config", conf}, 0, "Note: the nodes could not be listed", ""},
		{[]string{"plan", "upgrade", "newest", "--config", conf}, 2, "", `"newest" is not a NocoBase version or tag`},
		{[]string{"plan", "upgrade", "1.7.14", "staging", "--config", conf}, 2, "", `unknown cluster "staging"`},
		{[]string{"run", "deploy", "--config", conf}, 2, "", `unknown command "deploy"`},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"history", "--log-level", "loud", "--config", conf}, 2, "", "--log-level"},
		{[]string{"--help"}, 0, "nocobot run <procedure> [args]", ""},
		{[]string{"run", "--help"}, 0, "", "Usage: nocobot run"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := nocobot(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
				t.Fatalf("exit %d, out %q, err %q\nwant exit %d, out containing %q, err containing %q", code, out, errs, tt.code, tt.out, tt.err)
			}
			if tt.code != 0 && strings.Count(strings.TrimSpace(errs), "\n") > 0 && !strings.Contains(errs, "Usage") {
				t.Fatalf("error is more than one line: %q", errs)
			}
		})
	}
	// Plans and bad commands changed nothing: no run was recorded.
	if _, out, _ := nocobot(t, "history", "--config", conf); !strings.Contains(out, "No runs yet.") {
		t.Fatalf("history after plans: %q", out)
	}
}

// config check reads every window's command as the scheduler will start it:
// a typo fails the check, not the window at 02:00 on Saturday.
func TestConfigCheckWindowCommands(t *testing.T) {
	conf := writeConfig(t)
	body, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ command, want string }{
		{"maintian bakcup", `window nightly: command "maintian bakcup": unknown procedure "maintian"`},
		{"maintain bakcup", `window nightly: command "maintain bakcup": unknown cluster "bakcup"`},
		{"status", `window nightly: command "status": unknown procedure "status"`},
		{"upgrade", `window nightly: command "upgrade": which version?`},
	} {
		window := "    windows:\n      - {id: nightly, cron: \"0 2 * * 6\", command: " + c.command + "}\n"
		if err := os.WriteFile(conf, append(slices.Clone(body), window...), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errs := nocobot(t, "config", "check", "--config", conf)
		if code != exitError || out != "" || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("command %q: exit %d, out %q, err %q; want exit 1 and one line with %q", c.command, code, out, errs, c.want)
		}
	}
	window := "    windows:\n      - {id: nightly, cron: \"0 2 * * 6\", command: maintain backup}\n"
	if err := os.WriteFile(conf, append(slices.Clone(body), window...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := nocobot(t, "config", "check", "--config", conf); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("a valid window: exit %d, out %q, err %q", code, out, errs)
	}
}

// The words of the command language at the terminal go through the
// dispatcher: a run left waiting is answered, cancelled and looked at
// with them, and each is in the audit log with its outcome and run.
func TestTerminalWords(t *testing.T) {
	conf := writeConfig(t)
	// Docker is unreachable: preflight fails and the run waits for retry or abort.
	code, _, errs := nocobot(t, "run", "maintain", "--config", conf, "--log-level", "error")
	if code != 1 || !strings.Contains(errs, "waits at its checkpoint") || !strings.Contains(errs, "nocobot decide r") {
		t.Fatalf("run with no answer: exit %d, %q", code, errs)
	}
	_, out, _ := nocobot(t, "history", "--config", conf)
	id := strings.Fields(strings.Split(out, "\n")[1])[0]

	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"status"}, 0, "Running: " + id + " — maintenance of prod (manual window)", ""},
		{[]string{"status", "staging"}, 1, "", `unknown cluster "staging" (known: prod)`},
		{[]string{"decide", id, "continue"}, 1, "", "Continue is not an option here: choose Retry or Abort."},
		{[]string{"decide", id, "frob"}, 2, "", `"frob": expected continue, rollback, abort, retry or done`},
		{[]string{"decide", "r0000-none", "abort"}, 1, "", "There is no run r0000-none."},
		{[]string{"decide", id, "abort"}, 0, "Recorded: Abort on run " + id, ""},
		{[]string{"cancel", id}, 0, "Abort requested for run " + id, ""},
		{[]string{"cancel"}, 2, "", "which run?"},
	}
	for _, tt := range tests {
		args := append(tt.args, "--config", conf)
		code, out, errs := nocobot(t, args...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
			t.Fatalf("%v: exit %d, out %q, err %q\nwant exit %d, out containing %q, err containing %q", tt.args, code, out, errs, tt.code, tt.out, tt.err)
		}
	}
	_, out, _ = nocobot(t, "audit", "--run", id, "--config", conf)
	for _, want := range []string{
		"nocobot run maintain", "nocobot decide " + id + " continue", "refused: Continue is not an option here",
		"nocobot decide " + id + " abort", "ok: abort", "nocobot cancel " + id,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("audit --run %s lacks %q:\n%s", id, want, out)
		}
	}
	if strings.Contains(out, "nocobot status") || strings.Contains(out, "r0000-none") {
		t.Fatalf("audit --run %s lists entries about other things:\n%s", id, out)
	}
}
