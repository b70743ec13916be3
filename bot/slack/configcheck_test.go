package slack_test

import (
	"strings"
	"testing"

	"github.com/nocobot/nocobot/config"
)

const minimal = `
clusters:
  - name: prod
    nodes: {labels: {app: nocobase}}
    load_balancer: {type: none}
    backup: {destination: /b, database: {container: db, name: nocobase}}
`

// The Slack front's keys and ids are checked with the rest of the file
// (this package registers its check), each problem naming the key and
// what is expected, by line.
func TestSlackConfigProblems(t *testing.T) {
	for _, tt := range []struct{ name, edit, want string }{
		{"bad user", "access: {run: {users: [alice]}}\n" + minimal, `access.run.users: "alice" is not a Slack user id`},
		{"bad group", "access: {decide: {groups: [ops]}}\n" + minimal, `access.decide.groups: "ops" is not a Slack user group id`},
		{"channel name", strings.Replace(minimal, "name: prod", "name: prod\n    slack: {channel: '#ops'}", 1), "the id, not the #name"},
		{"old channel key", strings.Replace(minimal, "name: prod", "name: prod\n    channel: '#ops'", 1), "the id, not the #name"},
		{"access channel", minimal + "    access: {slack: {channels: [ops]}}\n", `clusters[0] (prod).access.slack.channels: "ops" is not a Slack channel id`},
		{"slack api url", "slack: {api_url: 'ftp://slack.example/api'}\n" + minimal, `slack.api_url: "ftp://slack.example/api": expected an http(s) URL`},
		{"slack api url with token", "slack: {api_url: 'https://xoxb:hunter2@slack.example/api/'}\n" + minimal, "slack.api_url: holds credentials"},
		{"mode", "slack: {mode: of}\n" + minimal, `slack.mode: "of": expected socket, http or off`},
		{"same port", "slack: {mode: http, listen: ':3000'}\nhttp: {listen: ':3000'}\n" + minimal, `http.listen: ":3000" is slack.listen too`},
		{"same default port", "slack: {mode: http}\nhttp: {listen: ':3000'}\n" + minimal, `http.listen: ":3000" is slack.listen too`},
		{"command", "slack: {command: nocobase}\n" + minimal, `slack.command: "nocobase": expected a slash command`},
		{"token name", "slack: {bot_token_env: 'xoxb-123'}\n" + minimal, `slack.bot_token_env: "xoxb-123" is not an environment variable name`},
		// A terminal user maps to a Slack user id, or the rules could
		// never name them.
		{"terminal user", "access:\n  terminal_users: {alice: alice}\n" + minimal, `2:3: access.terminal_users.alice: "alice" is not a Slack user id`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse(strings.NewReader(tt.edit))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatal("the error leaks a password")
			}
		})
	}
}

// slack.api_url gets the trailing slash slack-go needs.
func TestSlackAPIURL(t *testing.T) {
	c, err := config.Parse(strings.NewReader("slack: {api_url: 'https://slack-gov.com/api'}\n" + minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Slack.APIURL != "https://slack-gov.com/api/" {
		t.Fatalf("api_url = %q, want it with its trailing slash", c.Slack.APIURL)
	}
}

// The slack block's defaults: socket mode, /nocobase, and in http mode
// the port 3000.
func TestSlackDefaults(t *testing.T) {
	c, err := config.Parse(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Slack.Mode != "socket" || c.Slack.Command != "/nocobase" || c.Slack.Listen != "" || !c.Slack.On() {
		t.Fatalf("defaults: %+v", c.Slack)
	}
	c, err = config.Parse(strings.NewReader("slack: {mode: http}\n" + minimal))
	if err != nil || c.Slack.Listen != ":3000" {
		t.Fatalf("http mode: %v, %+v", err, c.Slack)
	}
}
