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
access: {trust_terminal: true}
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
		{[]string{"plan", "upgrade", "1.7.14", "staging", "--config", conf}, 6, "", `unknown cluster "staging"`},
		{[]string{"run", "deploy", "--config", conf}, 2, "", `unknown command "deploy"`},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"history", "--log-level", "loud", "--config", conf}, 2, "", "--log-level"},
		{[]string{"--help"}, 0, "run <procedure> [args]", ""},
		{[]string{"help"}, 0, "attach <run>", ""},
		{[]string{"help", "run"}, 0, "Usage: nocobot run", ""},
		{[]string{"run", "--help"}, 0, "Usage: nocobot run", ""},
		{[]string{"run", "help"}, 0, "--on-interrupt", ""},
		{[]string{"--config", conf, "plan", "start"}, 0, "Plan for the first start of prod", ""},
		{[]string{"--config=" + conf, "history"}, 0, "No runs yet.", ""},
		{[]string{"run", "upgrade", "1.7.14", "--dry-run", "--config", conf}, 0, "Plan for the upgrade of prod", ""},
		{[]string{"history", "--frob", "--config", conf}, 2, "", "unknown flag --frob"},
		{[]string{"history", "--since", "--config", conf}, 2, "", "unknown flag --since"},
		{[]string{"audit", "-n", "many", "--config", conf}, 2, "", "-n many: "},
		{[]string{"--frob", "history"}, 2, "", "unknown flag --frob before the command"},
		{[]string{"decide", "r1", "--config", conf}, 2, "", "which run and which choice?"},
		{[]string{"traffic", "sideways", "--config", conf}, 2, "", "traffic sideways: expected on"},
		{[]string{"attach", "--config", conf}, 2, "", "which run?"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := nocobot(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
				t.Fatalf("exit %d, out %q, err %q\nwant exit %d, out containing %q, err containing %q", code, out, errs, tt.code, tt.out, tt.err)
			}
			// One line of error; a usage error's usage on the next.
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if tt.code != 0 && (len(lines) > 2 || len(lines) == 2 && (tt.code != 2 && tt.code != 6 || !strings.HasPrefix(lines[1], "Usage: "))) {
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
		if code != 1 || out != "" || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
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

// plan needs no secrets and writes no store: with the API key's
// variable unset and no store file yet, it plans and leaves none behind.
func TestPlanNeedsNoSecretsNorStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state", "deep", "n.db")
	conf := filepath.Join(dir, "nocobot.yaml")
	body := strings.Replace(strings.Replace(cfg, "%s", db, 1), "%s", filepath.Join(dir, "backups"), 1) +
		"    nocobase: {api_key_env: NOCOBOT_MAINTEST_UNSET_KEY}\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := nocobot(t, "plan", "upgrade", "1.7.14", "--config", conf)
	if code != 0 || !strings.Contains(out, "Plan for the upgrade of prod") {
		t.Fatalf("plan: exit %d, out %q, err %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Fatalf("plan created the store's folder: %v", err)
	}
	// The first command that needs the store creates its folder.
	if code, out, errs := nocobot(t, "history", "--config", conf); code != 0 || !strings.Contains(out, "No runs yet.") {
		t.Fatalf("history: exit %d, out %q, err %q", code, out, errs)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("store file: %v", err)
	}
}
