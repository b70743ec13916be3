package config

import (
	"errors"
	"fmt"
)

// secretFields lists every secret the file names, the fronts' with them.
func (c *Config) secretFields() []SecretField {
	fs := []SecretField{{Field: "store.password_env", Env: c.Store.PasswordEnv}}
	for _, f := range registered() {
		if f.Secrets != nil {
			fs = append(fs, f.Secrets(c)...)
		}
	}
	for _, cl := range c.Clusters {
		f := "clusters (" + cl.Name + ")"
		fs = append(fs,
			SecretField{Field: f + ".docker.registry.password_env", Env: cl.Docker.Registry.PasswordEnv},
			SecretField{Field: f + ".nocobase.api_key_env", Env: cl.NocoBase.APIKeyEnv},
			SecretField{Field: f + ".load_balancer.secret_env", Env: cl.LB.SecretEnv},
			SecretField{Field: f + ".backup.database.password_env", Env: cl.Backup.Database.PasswordEnv},
			SecretField{Field: f + ".backup.database.url_env", Env: cl.Backup.Database.URLEnv},
		)
	}
	for _, w := range c.Webhooks {
		f := "webhooks (" + w.Name + ")"
		fs = append(fs,
			SecretField{Field: f + ".url_env", Env: w.URLEnv},
			SecretField{Field: f + ".secret_env", Env: w.SecretEnv},
			SecretField{Field: f + ".authorization_env", Env: w.AuthorizationEnv},
		)
	}
	return fs
}

// CheckSecrets reports every missing secret at once, one line each: a
// variable the file names that is not set, or a secret a front needs
// that no field names. Values are never part of an error.
func (c *Config) CheckSecrets() error {
	var errs []error
	for _, s := range c.secretFields() {
		if s.Env == "" {
			if s.Missing != "" {
				errs = append(errs, fmt.Errorf("%s: %s", s.Field, s.Missing))
			}
			continue
		}
		if _, err := Secret(s.Field, s.Env); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
