package config

import "sync"

// FrontCheck checks a front's part of the file (its block, the ids its
// people and channels are named by) and may fill in what it derives.
// Each error made with FieldError is shown with the key's line, as the
// file's own problems are.
type FrontCheck func(c *Config) []error

var (
	frontsMu    sync.Mutex
	frontChecks []FrontCheck
)

// RegisterFront adds a front's check to every Parse and Read from now
// on; a front's package calls it when it is loaded, as database/sql
// drivers register, so the core knows no front by name.
func RegisterFront(check FrontCheck) {
	frontsMu.Lock()
	defer frontsMu.Unlock()
	frontChecks = append(frontChecks, check)
}

func (c *Config) checkFronts(p *problems) {
	frontsMu.Lock()
	checks := append([]FrontCheck(nil), frontChecks...)
	frontsMu.Unlock()
	for _, check := range checks {
		for _, err := range check(c) {
			p.add(err)
		}
	}
}

// FieldError is a problem of one key: field is its path as problems name
// it (access.run.users, clusters[0] (prod).slack.channel).
func FieldError(field, format string, a ...any) error {
	return fieldError(field, format, a...)
}

// CheckEnv checks a *_env field: empty (or required) or a variable name.
func CheckEnv(field, v string, required bool) error { return checkEnv(field, v, required) }
