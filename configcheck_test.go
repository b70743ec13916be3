package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// config check, the built binary, finds every problem of a file in one
// pass: wrong keys and wrong kinds of value as well as values the keys
// refuse, one line each with its line, column and key, by line.
func TestConfigCheckFindsEveryProblemInOnePass(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nocobot.yaml")
	body := fmt.Sprintf(`store: {schema: nocobot, path: %s}
slack: {mode: "off"}
clusters:
  - name: prod
    nodes:
      labels: {app: nocobase}
      prot: 13000
    load_balancer: {type: haproxy}
    backup:
      destination: %s
      database: {container: db, name: nocobase}
      keep_last: many
    timeouts:
      health: [10m]
    access:
      terminal_users: {alice: U0ALICE}
    windows:
      - {id: nightly, cron: "0 2 * * 6", command: maintain backup, aproval: none}
`, filepath.Join(dir, "n.db"), filepath.Join(dir, "b"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := nocobotx(t, nil, "config", "check", "--config", conf)
	want := []string{
		conf + ":1:9: store.schema: only with store.url (PostgreSQL)",
		conf + ":7:7: clusters[0] (prod).nodes.prot: unknown key (expected one of: labels, migrations,",
		conf + `:8:21: clusters[0] (prod).load_balancer.type: "haproxy": expected nginx, webhook, kubernetes or none`,
		conf + `:12:18: clusters[0] (prod).backup.keep_last: expected a whole number, got "many"`,
		conf + ":14:15: clusters[0] (prod).timeouts.health: expected a duration such as 90s, 10m, 2h or 7d",
		conf + ":16:7: clusters[0] (prod).access.terminal_users: top level only",
		conf + ":18:68: clusters[0] (prod).windows[0].aproval: unknown key (expected one of: announce, approval,",
		"nocobot config: " + conf + ": 7 problems (each on a line above)",
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if code == 0 || out != "" || len(lines) != len(want) {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %d lines", code, out, errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q\nwant it to start %q", i+1, lines[i], w)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("config check left files behind: %v", entries)
	}
}

// The reference and the binary agree on terminal access: the reference
// says an unmapped terminal user passes no access rule, and the binary
// refuses them; mapped to a Slack id the rules name, they pass.
func TestTerminalAccessAsDocumented(t *testing.T) {
	doc, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(doc)), " ")
	if !strings.Contains(text, "an unmapped terminal user passes none of these rules") || strings.Contains(text, "A terminal's operator passes these rules") {
		t.Fatal("docs/configuration.md must say that an unmapped terminal user passes none of the access rules")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	unmapped := processConfig(t, "access: {run: {users: [U0OPS]}}", "prod")
	code, _, errs := nocobotx(t, nil, "traffic", "off", "--config", unmapped)
	if code != 1 || !strings.Contains(errs, "You are not allowed to switch traffic on prod.") {
		t.Fatalf("unmapped terminal user: exit %d, %q", code, errs)
	}
	mapped := processConfig(t, fmt.Sprintf("access: {run: {users: [U0OPS]}, terminal_users: {%q: U0OPS}}", u.Username), "prod")
	code, out, errs := nocobotx(t, nil, "traffic", "off", "--config", mapped)
	if code != 0 || strings.Contains(errs, "not allowed") || !strings.Contains(out, "switch traffic off") {
		t.Fatalf("mapped terminal user: exit %d, out %q, err %q", code, out, errs)
	}
}
