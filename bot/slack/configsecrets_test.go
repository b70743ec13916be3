package slack_test

import (
	"strings"
	"testing"

	"github.com/nocobot/nocobot/config"
)

// slack.mode: off needs no Slack token and no channel.
func TestSlackOffNeedsNoTokens(t *testing.T) {
	c, err := config.Parse(strings.NewReader("slack: {mode: off}\nhttp: {listen: '127.0.0.1:9090'}\n" + minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Slack.On() || c.HTTP.Listen != "127.0.0.1:9090" {
		t.Fatalf("parsed: %+v", c)
	}
	if err := c.CheckSecrets(); err != nil {
		t.Fatalf("secrets with Slack off: %v", err)
	}
	if err := c.CheckFronts(); err != nil {
		t.Fatalf("channels with Slack off: %v", err)
	}
}

// Every missing secret is reported at once, one line each, naming the
// field and the variable and never a value.
func TestCheckSecretsReportsEveryMissingOne(t *testing.T) {
	t.Setenv("NOCOBOT_CT_SET", "s3cret-value")
	body := `
store: {url: 'postgres://nocobot@db/nocobot', password_env: NOCOBOT_CT_STORE}
slack: {mode: socket, bot_token_env: NOCOBOT_CT_SET}
clusters:
  - name: prod
    nodes: {labels: {app: nocobase}}
    nocobase: {api_key_env: NOCOBOT_CT_KEY}
    load_balancer: {type: webhook, url: 'http://lb', secret_env: NOCOBOT_CT_SET}
    backup: {destination: /b, database: {container: db, name: nocobase, password_env: NOCOBOT_CT_DB}}
`
	c, err := config.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckSecrets()
	if err == nil {
		t.Fatal("no error with four secrets missing")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"store.password_env: environment variable NOCOBOT_CT_STORE is not set",
		"slack.app_token_env: required while slack.mode is socket",
		"clusters (prod).nocobase.api_key_env: environment variable NOCOBOT_CT_KEY is not set",
		"clusters (prod).backup.database.password_env: environment variable NOCOBOT_CT_DB is not set",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want it to start with %q", i, lines[i], w)
		}
	}
	if strings.Contains(err.Error(), "s3cret-value") {
		t.Fatal("a secret's value is in the error")
	}
	if err := c.CheckFronts(); err == nil || !strings.Contains(err.Error(), "clusters (prod).slack.channel: not set") {
		t.Fatalf("channels: %v", err)
	}
	for _, v := range []string{"NOCOBOT_CT_STORE", "NOCOBOT_CT_KEY", "NOCOBOT_CT_DB"} {
		t.Setenv(v, "x")
	}
	c.Slack.Mode = "http"
	c.Slack.SigningSecretEnv = "NOCOBOT_CT_SET"
	if err := c.CheckSecrets(); err != nil {
		t.Fatalf("every secret set: %v", err)
	}
}
