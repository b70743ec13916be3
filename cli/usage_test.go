package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/bot"
)

// The usage and every subcommand's --help are made from the command
// table: every command of the language is a subcommand, listed with its
// words and help line, its --help giving its usage and its options as
// flags; every procedure is listed with its usage.
func TestUsageIsMadeFromTheTable(t *testing.T) {
	u := usage()
	for _, c := range bot.Commands() {
		if c.Procedure {
			if !strings.Contains(u, "\n  "+strings.TrimSpace(c.Name+" "+c.Args)+"\n") {
				t.Errorf("usage lacks the procedure %s %s", c.Name, c.Args)
			}
			continue
		}
		if c.Name == "help" {
			continue
		}
		if !strings.Contains(u, "\n  "+c.Name+" "+c.Brief) || !strings.Contains(u, c.Help) {
			t.Errorf("usage lacks %s %s — %s", c.Name, c.Brief, c.Help)
		}
		var out, errs bytes.Buffer
		if code := Run([]string{"help", c.Name}, strings.NewReader(""), &out, &errs); code != exitOK {
			t.Fatalf("help %s: exit %d, %s", c.Name, code, errs.String())
		}
		if !strings.HasPrefix(out.String(), "Usage: nocobot "+c.Name+" ") || !strings.Contains(out.String(), strings.SplitN(c.More, "\n", 2)[0]) {
			t.Errorf("help %s:\n%s", c.Name, out.String())
		}
		for _, o := range c.Options {
			if !strings.Contains(out.String(), "\n  "+o.Flag()+" ") {
				t.Errorf("help %s lacks the flag %s:\n%s", c.Name, o.Flag(), out.String())
			}
		}
	}
	for _, c := range commands() {
		if !strings.Contains(u, "\n  "+strings.TrimSpace(c.name+" "+c.args)) {
			t.Errorf("usage lacks the subcommand %s", c.name)
		}
	}
}
