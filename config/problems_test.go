package config

import (
	"errors"
	"strings"
	"testing"
)

// Keys the reference allows only in one place are refused elsewhere, by
// line and key, and accepted where it allows them.
func TestKeysRefusedOutsideTheirPlace(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"schema beside path", "store: {path: n.db, schema: nocobot}\n" + minimal,
			"1:21: store.schema: only with store.url (PostgreSQL)"},
		{"password beside path", "store:\n  password_env: NOCOBOT_DB_PASSWORD\n" + minimal,
			"2:3: store.password_env: only with store.url (PostgreSQL)"},
		{"terminal users under a cluster", minimal + "    access: {terminal_users: {alice: U0ALICE}}\n",
			"7:14: clusters[0] (prod).access.terminal_users: top level only"},
		{"trust under a cluster", minimal + "    access:\n      trust_terminal: true\n",
			"8:7: clusters[0] (prod).access.trust_terminal: top level only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.file))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error = %v\nwant one line starting %q", err, tt.want)
			}
		})
	}
	for _, ok := range []string{
		"store: {url: 'postgres://nocobot@db/nocobot', schema: ops, password_env: NOCOBOT_DB_PASSWORD}\n" + minimal,
		"access: {terminal_users: {alice: U0ALICE}, trust_terminal: false}\n" + minimal + "    access: {run: {users: [U0ALICE]}}\n",
	} {
		if _, err := Parse(strings.NewReader(ok)); err != nil {
			t.Errorf("refused: %v\n%s", err, ok)
		}
	}
}

// Structural and semantic problems come together, each once, by line.
func TestEveryProblemInOnePass(t *testing.T) {
	file := `store: {path: n.db}
slak: {mode: "off"}
clusters:
  - name: prod
    nodes: {labels: {app: nocobase}, port: high}
    load_balancer: {type: haproxy}
    backup: {destination: /b, database: {container: db, name: nocobase}, keep_last: -1}
    timeouts: {health: 10 minutes}
`
	_, err := Parse(strings.NewReader(file))
	ps, ok := errors.AsType[*Problems](err)
	if !ok {
		t.Fatalf("error = %v, want every problem", err)
	}
	want := []string{
		"2:1: slak: unknown key (expected one of: access, audit, clusters, http, schedule, slack, store, webhooks)",
		`5:44: clusters[0] (prod).nodes.port: expected a whole number, got "high"`,
		`6:21: clusters[0] (prod).load_balancer.type: "haproxy": expected nginx, webhook, kubernetes or none`,
		"7:74: clusters[0] (prod).backup.keep_last: expected 0 (keep all) or more",
		`8:24: clusters[0] (prod).timeouts.health: "10 minutes" is not a duration (expected e.g. 90s, 10m, 2h, 7d, 2w)`,
	}
	if got := ps.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
