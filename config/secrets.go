package config

import (
	"errors"
	"fmt"
)

// secretField is one *_env field: where it is, the variable it names, and
// whether serve cannot do without it.
type secretField struct {
	field, env string
	required   bool
	why        string // what the secret is, for a required field left empty
}

// secretFields lists every secret the file names, and those the Slack
// mode requires.
func (c *Config) secretFields() []secretField {
	fs := []secretField{{field: "store.password_env", env: c.Store.PasswordEnv}}
	if c.Slack.On() {
		fs = append(fs, secretField{field: "slack.bot_token_env", env: c.Slack.BotTokenEnv, required: true, why: "the bot token, xoxb-…"})
		switch c.Slack.Mode {
		case "http":
			fs = append(fs, secretField{field: "slack.signing_secret_env", env: c.Slack.SigningSecretEnv, required: true, why: "the signing secret of http mode"},
				secretField{field: "slack.app_token_env", env: c.Slack.AppTokenEnv})
		default:
			fs = append(fs, secretField{field: "slack.app_token_env", env: c.Slack.AppTokenEnv, required: true, why: "the app-level token of socket mode, xapp-…"},
				secretField{field: "slack.signing_secret_env", env: c.Slack.SigningSecretEnv})
		}
	}
	for _, cl := range c.Clusters {
		f := "clusters (" + cl.Name + ")"
		fs = append(fs,
			secretField{field: f + ".docker.registry.password_env", env: cl.Docker.Registry.PasswordEnv},
			secretField{field: f + ".nocobase.api_key_env", env: cl.NocoBase.APIKeyEnv},
			secretField{field: f + ".load_balancer.secret_env", env: cl.LB.SecretEnv},
			secretField{field: f + ".backup.database.password_env", env: cl.Backup.Database.PasswordEnv},
			secretField{field: f + ".backup.database.url_env", env: cl.Backup.Database.URLEnv},
		)
	}
	for _, w := range c.Webhooks {
		f := "webhooks (" + w.Name + ")"
		fs = append(fs,
			secretField{field: f + ".url_env", env: w.URLEnv},
			secretField{field: f + ".secret_env", env: w.SecretEnv},
			secretField{field: f + ".authorization_env", env: w.AuthorizationEnv},
		)
	}
	return fs
}

// CheckSecrets reports every missing secret at once, one line each: a
// variable the file names that is not set, or a token the Slack mode
// needs that no field names. Values are never part of an error.
func (c *Config) CheckSecrets() error {
	var errs []error
	for _, s := range c.secretFields() {
		if s.env == "" {
			if s.required {
				errs = append(errs, fmt.Errorf("%s: required while slack.mode is %s: name the variable that holds %s", s.field, c.Slack.Mode, s.why))
			}
			continue
		}
		if _, err := Secret(s.field, s.env); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CheckChannels reports, while Slack is on, every cluster without a
// channel: its runs would have no thread, and its commands must name it.
func (c *Config) CheckChannels() error {
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
