package slack

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/nocobot/nocobot/config"
)

// The Slack front's part of the configuration is checked with the rest
// of the file, each problem by line, wherever this package is built in.
func init() {
	config.RegisterFront(config.Front{Check: checkConfig, Secrets: secrets, Serving: checkChannels})
}

// secrets are the tokens the Slack mode needs, and those it may use.
func secrets(c *config.Config) []config.SecretField {
	sl := c.Slack
	if !sl.On() {
		return nil
	}
	need := func(field, env, what string) config.SecretField {
		return config.SecretField{Field: field, Env: env,
			Missing: fmt.Sprintf("required while slack.mode is %s: name the variable that holds %s", sl.Mode, what)}
	}
	fs := []config.SecretField{need("slack.bot_token_env", sl.BotTokenEnv, "the bot token, xoxb-…")}
	if sl.Mode == "http" {
		return append(fs, need("slack.signing_secret_env", sl.SigningSecretEnv, "the signing secret of http mode"),
			config.SecretField{Field: "slack.app_token_env", Env: sl.AppTokenEnv})
	}
	return append(fs, need("slack.app_token_env", sl.AppTokenEnv, "the app-level token of socket mode, xapp-…"),
		config.SecretField{Field: "slack.signing_secret_env", Env: sl.SigningSecretEnv})
}

// checkChannels reports, while Slack is on, every cluster without a
// channel: its runs would have no thread, and its commands must name it.
func checkChannels(c *config.Config) error {
	if !c.Slack.On() {
		return nil
	}
	var errs []error
	for _, cl := range c.Clusters {
		if cl.Slack.Channel == "" {
			errs = append(errs, fmt.Errorf("clusters (%s).slack.channel: not set: with Slack on, the cluster's runs have no channel to post in (set its channel id, or slack.mode: off)", cl.Name))
		}
	}
	return errors.Join(errs...)
}

var (
	userID    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupID   = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	channelID = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
)

// checkConfig checks the slack block, and the Slack ids the access rules
// and the clusters name; it adds the trailing slash slack.api_url needs
// and the block's defaults (socket mode, /nocobase, :3000 in http mode).
func checkConfig(c *config.Config) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	sl := &c.Slack
	switch sl.Mode {
	case "", "socket", "http", config.SlackOff:
	default:
		add(config.FieldError("slack.mode", "%q: expected socket, http or off", sl.Mode))
	}
	if h := c.HTTP.Listen; sl.Mode == "http" && h != "" {
		if host, port, err := net.SplitHostPort(h); err == nil && (sl.Listen == h || sl.Listen == "" && host == "" && port == "3000") {
			add(config.FieldError("http.listen", "%q is slack.listen too: give the two endpoints different ports", h))
		}
	}
	for _, f := range []struct{ field, v string }{{"slack.bot_token_env", sl.BotTokenEnv}, {"slack.app_token_env", sl.AppTokenEnv}, {"slack.signing_secret_env", sl.SigningSecretEnv}} {
		add(config.CheckEnv(f.field, f.v, false))
	}
	if u := sl.APIURL; u != "" {
		pu, err := url.Parse(u)
		switch {
		case err == nil && pu.User != nil:
			add(config.FieldError("slack.api_url", "holds credentials: a token goes in slack.bot_token_env, never in the URL"))
		case err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "":
			add(config.FieldError("slack.api_url", "%q: expected an http(s) URL such as https://slack.com/api/", u))
		}
		if !strings.HasSuffix(u, "/") {
			sl.APIURL = u + "/"
		}
	}
	if sl.Command != "" && !strings.HasPrefix(sl.Command, "/") {
		add(config.FieldError("slack.command", "%q: expected a slash command such as /nocobase", sl.Command))
	}
	errs = append(errs, checkAccess(c.Access, "access")...)
	for name, id := range c.Access.TerminalUsers {
		if !userID.MatchString(id) {
			add(config.FieldError("access.terminal_users."+name, "%q is not a Slack user id (expected e.g. U0123ABCD: the id the access rules name)", id))
		}
	}
	for i, cl := range c.Clusters {
		f := fmt.Sprintf("clusters[%d] (%s)", i, cl.Name)
		if cl.Slack.Channel != "" && !channelID.MatchString(cl.Slack.Channel) {
			add(config.FieldError(f+".slack.channel", "%q is not a Slack channel id (expected e.g. C0123ABCD; the id, not the #name)", cl.Slack.Channel))
		}
		if cl.Access != nil {
			errs = append(errs, checkAccess(*cl.Access, f+".access")...)
		}
	}
	if sl.Mode == "" {
		sl.Mode = "socket"
	}
	if sl.Command == "" {
		sl.Command = "/nocobase"
	}
	if sl.Mode == "http" && sl.Listen == "" {
		sl.Listen = ":3000"
	}
	return errs
}

// checkAccess checks that the rules name Slack users, groups and channels.
func checkAccess(a config.Access, f string) []error {
	var errs []error
	for _, r := range []struct {
		f string
		p config.Principals
	}{{f + ".run", a.Run}, {f + ".decide", a.Decide}} {
		for _, u := range r.p.Users {
			if !userID.MatchString(u) {
				errs = append(errs, config.FieldError(r.f+".users", "%q is not a Slack user id (expected e.g. U0123ABCD)", u))
			}
		}
		for _, g := range r.p.Groups {
			if !groupID.MatchString(g) {
				errs = append(errs, config.FieldError(r.f+".groups", "%q is not a Slack user group id (expected e.g. S0123ABCD)", g))
			}
		}
	}
	for _, ch := range a.Slack.Channels {
		if !channelID.MatchString(ch) {
			errs = append(errs, config.FieldError(f+".slack.channels", "%q is not a Slack channel id (expected e.g. C0123ABCD)", ch))
		}
	}
	return errs
}
