package config

import (
	"errors"
	"sync"
)

// Front is what a front (a chat) adds to the configuration's checks. Its
// package registers it when loaded (RegisterFront), as database/sql
// drivers register, so the core knows no front by name.
type Front struct {
	// Check checks the front's part of the file (its block, the ids its
	// people and channels are named by) at every Parse and Read, and may
	// fill in what it derives. An error made with FieldError is shown
	// with the key's line, as the file's own problems are.
	Check func(c *Config) []error
	// Secrets are the *_env fields the front names (CheckSecrets).
	Secrets func(c *Config) []SecretField
	// Serving reports what the front would lack while serving, each on a
	// line (Slack: a cluster without a channel): serve warns, config
	// check fails (CheckFronts).
	Serving func(c *Config) error
}

// SecretField is one *_env field: where it is and the variable it names.
type SecretField struct {
	Field, Env string
	// Missing, when the field is empty, is why serve cannot do without
	// it; empty: the field is optional.
	Missing string
}

var (
	frontsMu sync.Mutex
	fronts   []Front
)

// RegisterFront adds a front's checks from now on.
func RegisterFront(f Front) {
	frontsMu.Lock()
	defer frontsMu.Unlock()
	fronts = append(fronts, f)
}

func registered() []Front {
	frontsMu.Lock()
	defer frontsMu.Unlock()
	return append([]Front(nil), fronts...)
}

func (c *Config) checkFronts(p *problems) {
	for _, f := range registered() {
		if f.Check == nil {
			continue
		}
		for _, err := range f.Check(c) {
			p.add(err)
		}
	}
}

// CheckFronts reports, one a line, what each front would lack while
// serving (Slack on: every cluster without a channel).
func (c *Config) CheckFronts() error {
	var errs []error
	for _, f := range registered() {
		if f.Serving != nil {
			errs = append(errs, f.Serving(c))
		}
	}
	return errors.Join(errs...)
}

// FieldError is a problem of one key: field is its path as problems name
// it (access.run.users, clusters[0] (prod).slack.channel).
func FieldError(field, format string, a ...any) error {
	return fieldError(field, format, a...)
}

// CheckEnv checks a *_env field: empty (or required) or a variable name.
func CheckEnv(field, v string, required bool) error { return checkEnv(field, v, required) }
