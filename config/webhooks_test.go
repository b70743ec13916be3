package config

import (
	"strings"
	"testing"
)

// Each mistake in a webhook is one line naming the field; a key in the
// URL is never repeated in the error.
func TestWebhookValidation(t *testing.T) {
	for _, tc := range []struct{ hook, want string }{
		{`{name: oncall, url: "https://hooks.example.com/x", secret_env: NOCOBOT_HOOK_SECRET, events: [run.waiting, run.finished], clusters: [prod], timeout: 5s, attempts: 4}`, ""},
		{`{name: oncall, url_env: NOCOBOT_HOOK_URL}`, ""},
		{`{name: oncall}`, "webhooks[0] (oncall): url or url_env is required"},
		{`{name: oncall, url: "https://a", url_env: X}`, "set either url or url_env"},
		{`{name: "On Call", url: "https://a"}`, `webhooks[0].name: "On Call"`},
		{`{name: oncall, url: "ftp://a/b"}`, "webhooks[0] (oncall).url: expected an http(s) URL"},
		{`{name: oncall, url: "https://bob:hunter2-key@hooks.example.com/"}`, "holds credentials"},
		{`{name: oncall, url: "https://a", secret_env: "whsec-abc"}`, `webhooks[0] (oncall).secret_env: "whsec-abc" is not an environment variable name`},
		{`{name: oncall, url: "https://a", events: [run.waited]}`, `webhooks[0] (oncall).events: "run.waited": expected some of run.started, run.waiting, run.finished, window.announced`},
		{`{name: oncall, url: "https://a", clusters: [staging]}`, `webhooks[0] (oncall).clusters: "staging": no cluster`},
		{`{name: oncall, url: "https://a", attempts: 100}`, "webhooks[0] (oncall).attempts: 100: expected 1 to 20"},
		{`{name: oncall, url: "https://a"}, {name: oncall, url: "https://b"}`, "webhooks[1] (oncall).name: a webhook of that name comes earlier"},
	} {
		_, err := Parse(strings.NewReader(minimal + "webhooks: [" + tc.hook + "]\n"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.hook, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.hook, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n")):
			t.Errorf("%s: the error is not one line without the URL's key: %v", tc.hook, err)
		}
	}
}

// The webhook's variables are among the secrets serve checks, and a URL
// read from its variable is checked as one in the file.
func TestWebhookSecrets(t *testing.T) {
	c, err := Parse(strings.NewReader(minimal + "slack: {mode: off}\nwebhooks: [{name: oncall, url_env: NOCOBOT_T_URL, secret_env: NOCOBOT_T_SECRET}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckSecrets()
	if err == nil || !strings.Contains(err.Error(), "webhooks (oncall).url_env: environment variable NOCOBOT_T_URL is not set") ||
		!strings.Contains(err.Error(), "webhooks (oncall).secret_env: environment variable NOCOBOT_T_SECRET is not set") {
		t.Fatalf("CheckSecrets: %v", err)
	}
	t.Setenv("NOCOBOT_T_URL", "https://u:routing-key-99@events.example.com/")
	if _, err := WebhookURL(c.Webhooks[0], "webhooks (oncall)"); err == nil || strings.Contains(err.Error(), "routing-key-99") {
		t.Fatalf("WebhookURL with credentials: %v", err)
	}
	t.Setenv("NOCOBOT_T_URL", "https://events.example.com/v2/enqueue?key=routing-key-99")
	if u, err := WebhookURL(c.Webhooks[0], "webhooks (oncall)"); err != nil || u != "https://events.example.com/v2/enqueue?key=routing-key-99" {
		t.Fatalf("WebhookURL: %q, %v", u, err)
	}
}
