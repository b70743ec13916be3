package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestExampleIsValid(t *testing.T) {
	c, err := Load("../deploy/nocobot.example.yaml")
	if err != nil {
		t.Fatalf("the example configuration must be valid: %v", err)
	}
	prod, ok := c.Cluster("prod")
	if !ok || prod.Nodes.Port != 13000 || prod.Timeouts.Health.D().Minutes() != 10 || len(prod.Windows) != 1 {
		t.Fatalf("example parsed wrongly: %+v", prod)
	}
	if !c.AccessFor(prod).FourEyes {
		t.Fatal("four_eyes from the top-level access expected")
	}
}

const minimal = `
clusters:
  - name: prod
    nodes: {labels: {app: nocobase}}
    load_balancer: {type: none}
    backup: {destination: /b, database: {container: db, name: nocobase}}
`

func TestMinimalGetsDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Clusters[0]
	if c.Store.Path != "nocobot.db" || cl.Backup.Storage.Path != "/app/nocobase/storage" ||
		cl.Timeouts.OnCheckpoint != "remind" || cl.Nodes.Parallelism != 0 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if d := cl.NocoBase.PollInterval.D(); d != 200*time.Millisecond {
		t.Errorf("nocobase.poll_interval defaults to %s, want 200ms (a healthy node noticed within 250 ms)", d)
	}
}

// Durations take days and weeks as well as Go's units.
func TestDurationsInDaysAndWeeks(t *testing.T) {
	cfg, err := Parse(strings.NewReader(minimal + "    timeouts: {checkpoint: 1d12h, step: 90m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Clusters[0]
	if cl.Timeouts.Checkpoint.D() != 36*time.Hour || cl.Timeouts.Step.D() != 90*time.Minute {
		t.Fatalf("checkpoint %s, step %s", cl.Timeouts.Checkpoint.D(), cl.Timeouts.Step.D())
	}
	cfg, err = Parse(strings.NewReader(strings.Replace(minimal, "destination: /b, ", "destination: /b, max_age: 2w, ", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Clusters[0].Backup.MaxAge.D(); got != 14*24*time.Hour {
		t.Fatalf("max_age 2w read as %s", got)
	}
	for _, bad := range []string{"7days", "-1d", "d"} {
		if _, err := Parse(strings.NewReader(minimal + "    timeouts: {checkpoint: " + bad + "}\n")); err == nil || !strings.Contains(err.Error(), "is not a duration") {
			t.Errorf("checkpoint %q: %v, want a refusal", bad, err)
		}
	}
}

func TestBackupDialect(t *testing.T) {
	c, err := Parse(strings.NewReader(strings.Replace(minimal, "container: db,", "container: db, dialect: mariadb, mysql_bin: /opt/mariadb/bin,", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Clusters[0].Backup.Database; d.Dialect != "mariadb" || d.MySQLBin != "/opt/mariadb/bin" {
		t.Fatalf("database = %+v", d)
	}
}

func TestInvalidNamesFieldAndExpectation(t *testing.T) {
	tests := []struct {
		name, edit, want string
	}{
		{"no clusters", "clusters: []", "clusters: at least one cluster"},
		{"bad name", strings.Replace(minimal, "name: prod", "name: Prod!", 1), `clusters[0].name: "Prod!": expected a short name`},
		{"no nodes", strings.Replace(minimal, "nodes: {labels: {app: nocobase}}", "nodes: {}", 1), "clusters[0] (prod).nodes: expected labels"},
		{"bad lb", strings.Replace(minimal, "type: none", "type: haproxy", 1), `load_balancer.type: "haproxy": expected nginx, webhook, kubernetes or none`},
		{"no destination", strings.Replace(minimal, "destination: /b, ", "", 1), "backup.destination: required"},
		{"unknown field", minimal + "    colour: blue\n", "clusters[0] (prod).colour: unknown key (expected one of: access, backup"},
		{"bad duration", minimal + "    timeouts: {health: soon}\n", `"soon" is not a duration`},
		{"bad policy", minimal + "    timeouts: {on_checkpoint_timeout: pray}\n", `on_checkpoint_timeout: "pray": expected remind, rollback or abort`},
		{"secret in url", "store: {url: 'postgres://u:hunter2@h/db'}\n" + minimal, "store.url: holds a password"},
		{"env name", minimal + "    nocobase: {api_key_env: 'my key'}\n", `api_key_env: "my key" is not an environment variable name`},
		{"bad cron", minimal + "    windows: [{id: w, cron: '61 * * * *', command: start}]\n", "windows[0]: invalid cron expression"},
		{"tz in cron", minimal + "    windows: [{id: w, cron: 'TZ=UTC', command: start}]\n", "windows[0]: invalid cron expression"},
		{"bad tz", minimal + "    windows: [{id: w, cron: '@weekly', tz: Mars/Base, command: start}]\n", `"Mars/Base" is not a time zone`},
		{"bad pull policy", minimal + "    image: {pull: sometimes}\n", `clusters[0] (prod).image.pull: "sometimes": expected always, missing or never`},
		{"bad dialect", strings.Replace(minimal, "container: db,", "container: db, dialect: oracle,", 1), `backup.database.dialect: "oracle": expected postgres, mysql or mariadb`},
		{"store in public", "store: {url: 'postgres://nocobot@db/nocobase', schema: public}\n" + minimal, `store.schema: "public" is where NocoBase's tables live`},
		{"duplicate", minimal + strings.TrimPrefix(minimal, "\nclusters:\n"), "a cluster of that name comes earlier"},
		{"bad migrations", strings.Replace(minimal, "nodes: {labels: {app: nocobase}}", "nodes: {labels: {app: nocobase}, migrations: together}", 1),
			`nodes.migrations: "together": expected auto, skip-same-version or one-at-a-time`},
		{"switch on swarm", strings.Replace(minimal, "nodes: {labels: {app: nocobase}}", "nodes: {swarm_service: app, migrations: skip-same-version}", 1),
			"skip-same-version needs an environment per node"},
		{"probe timeout without url", strings.Replace(minimal, "type: none", "type: none, probe_timeout: 1m", 1),
			"load_balancer.probe_timeout: needs load_balancer.probe_url"},
		{"negative probe timeout", strings.Replace(minimal, "type: none", "type: none, probe_url: 'http://lb/', probe_timeout: -1s", 1),
			`load_balancer.probe_timeout: "-1s" is not a duration`},
		{"per node env name", strings.Replace(minimal, "nodes: {labels: {app: nocobase}}", "nodes: {labels: {app: nocobase}, per_node_env: ['APP PORT']}", 1),
			`nodes.per_node_env: "APP PORT" is not an environment variable name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.edit))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatal("the error leaks a password")
			}
		})
	}
}

func TestSecret(t *testing.T) {
	t.Setenv("NOCOBOT_TEST_SECRET", "s3cret")
	if v, err := Secret("slack.bot_token_env", "NOCOBOT_TEST_SECRET"); err != nil || v != "s3cret" {
		t.Fatalf("Secret = %q, %v", v, err)
	}
	os.Unsetenv("NOCOBOT_TEST_MISSING")
	_, err := Secret("slack.bot_token_env", "NOCOBOT_TEST_MISSING")
	if err == nil || !strings.Contains(err.Error(), "slack.bot_token_env: environment variable NOCOBOT_TEST_MISSING is not set") {
		t.Fatalf("missing secret error = %v", err)
	}
}
