package terminal

import (
	"testing"

	"github.com/nocobot/nocobot/store"
)

// Short answers are taken where they fit one choice only.
func TestShortAnswers(t *testing.T) {
	check := []store.Action{store.ActionContinue, store.ActionRollback, store.ActionAbort}
	failed := []store.Action{store.ActionRetry, store.ActionRollback, store.ActionAbort}
	for _, c := range []struct {
		typed string
		opts  []store.Action
		want  store.Action
		fits  int
	}{
		{"y", check, store.ActionContinue, 0},
		{"Yes", check, store.ActionContinue, 0},
		{"c", check, store.ActionContinue, 0},
		{"ro", check, store.ActionRollback, 0},
		{"roll back", check, store.ActionRollback, 0},
		{"2", check, store.ActionRollback, 0},
		{"a", check, store.ActionAbort, 0},
		{"r", failed, "", 2}, // retry or rollback
		{"y", failed, "", 0}, // continue is not a choice here
		{"re", failed, store.ActionRetry, 0},
		{"x", check, "", 0},
		{"", check, "", 0},
	} {
		got, fits := parseAnswer(c.typed, c.opts)
		if got != c.want || len(fits) != c.fits {
			t.Errorf("%q of %v: %q (fits %v), want %q", c.typed, c.opts, got, fits, c.want)
		}
	}
}
