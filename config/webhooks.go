package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Webhook is one receiver of outgoing webhooks (docs/webhooks.md). Its
// URL may carry a key, so it can come from an environment variable too.
type Webhook struct {
	Name string `yaml:"name"`
	// URL or URLEnv (the variable holding it), not both.
	URL    string `yaml:"url"`
	URLEnv string `yaml:"url_env"`
	// SecretEnv names the variable holding the HMAC-SHA256 key.
	SecretEnv string `yaml:"secret_env"`
	// AuthorizationEnv names the variable holding an Authorization
	// header's value, for receivers that want one.
	AuthorizationEnv string   `yaml:"authorization_env"`
	Events           []string `yaml:"events"`   // default all
	Clusters         []string `yaml:"clusters"` // default all
	Timeout          Duration `yaml:"timeout"`  // each attempt; default 10s
	Attempts         int      `yaml:"attempts"` // in all; default 6
}

// maxWebhookAttempts bounds the retries: with the back-off capped at two
// minutes, 20 attempts already span more than half an hour.
const maxWebhookAttempts = 20

// WebhookEvents are the events a webhook may name (notify delivers them;
// docs/webhooks.md). The configuration keeps its own list so that it
// depends on no part of the bot; a test in notify holds the two equal.
var WebhookEvents = []string{"run.started", "run.waiting", "run.finished", "window.announced"}

func (c *Config) validateWebhooks(p *problems) {
	seen := map[string]bool{}
	for i := range c.Webhooks {
		w := &c.Webhooks[i]
		f := fmt.Sprintf("webhooks[%d]", i)
		if !nameRE.MatchString(w.Name) {
			p.add(fieldError(f+".name", "%q: expected a short name of lower-case letters, digits, - and _", w.Name))
		}
		f = fmt.Sprintf("webhooks[%d] (%s)", i, w.Name)
		if seen[w.Name] {
			p.add(fieldError(f+".name", "a webhook of that name comes earlier in the file"))
		}
		seen[w.Name] = true
		switch {
		case w.URL == "" && w.URLEnv == "":
			p.add(fieldError(f, "url or url_env is required: where to send the events"))
		case w.URL != "" && w.URLEnv != "":
			p.add(fieldError(f, "set either url or url_env, not both"))
		case w.URL != "":
			if err := checkWebhookURL(w.URL); err != nil {
				p.add(fieldError(f+".url", "%s", err))
			}
		}
		for field, env := range map[string]string{".url_env": w.URLEnv, ".secret_env": w.SecretEnv, ".authorization_env": w.AuthorizationEnv} {
			p.add(checkEnv(f+field, env, false))
		}
		for _, e := range w.Events {
			if !slices.Contains(WebhookEvents, e) {
				p.add(fieldError(f+".events", "%q: expected some of %s", e, strings.Join(WebhookEvents, ", ")))
			}
		}
		for _, cl := range w.Clusters {
			if _, ok := c.Cluster(cl); !ok {
				p.add(fieldError(f+".clusters", "%q: no cluster of that name in this file", cl))
			}
		}
		if w.Attempts < 0 || w.Attempts > maxWebhookAttempts {
			p.add(fieldError(f+".attempts", "%d: expected 1 to %d (0: the default, 6)", w.Attempts, maxWebhookAttempts))
		}
	}
}

// checkWebhookURL accepts an http(s) URL with a host and no user:password
// (a key goes in url_env, secret_env or authorization_env). The URL is
// never repeated in the error: it may hold a key.
func checkWebhookURL(u string) error {
	p, err := url.Parse(u)
	switch {
	case err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "":
		return fmt.Errorf("expected an http(s) URL such as https://hooks.example.com/nocobot")
	case p.User != nil:
		return fmt.Errorf("holds credentials: put the URL in an environment variable and name it in url_env, or the key in authorization_env")
	}
	return nil
}

// WebhookURL is the webhook's URL, read from URLEnv when set, checked.
func WebhookURL(w Webhook, field string) (string, error) {
	if w.URLEnv == "" {
		return w.URL, nil
	}
	u, err := Secret(field+".url_env", w.URLEnv)
	if err != nil {
		return "", err
	}
	if err := checkWebhookURL(u); err != nil {
		return "", fmt.Errorf("%s.url_env: the URL in %s: %w", field, w.URLEnv, err)
	}
	return u, nil
}
