package bot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/procedures"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // the interesting fields
	}{
		{"", "help"},
		{"help", "help"},
		{"upgrade 1.7.14", "upgrade v=1.7.14 c= dry=false"},
		{"upgrade 1.7.14 prod --dry-run", "upgrade v=1.7.14 c=prod dry=true"},
		{"upgrade latest-full prod", "upgrade v=latest-full c=prod dry=false"},
		{"UPGRADE 2.0.0-beta.12 staging", "upgrade v=2.0.0-beta.12 c=staging dry=false"},
		{"maintain", "maintain c= acts=[]"},
		{"maintain prod", "maintain c=prod acts=[]"},
		{"maintain plugin enable @nocobase/plugin-map backup", "maintain c= acts=[plugin enable @nocobase/plugin-map,backup]"},
		{"maintain prod restore prod-20261122T020000Z", "maintain c=prod acts=[restore prod-20261122T020000Z]"},
		{"start prod", "start c=prod"},
		{"status", "status c="},
		{"history", "history n=20"},
		{"history 5 --cluster prod", "history n=5 c=prod"},
		{"history 3", "history n=3"},
		{"cancel r1122-7fq3", "cancel run=r1122-7fq3"},
		{"backups prod", "backups c=prod"},
		{`schedule add "0 2 * * 6" upgrade 1.7.15 prod --tz Europe/Berlin --duration 2h --announce 30m --approval required`,
			"schedule add cron=0 2 * * 6 tz=Europe/Berlin dur=2h0m0s ann=30m0s appr=true run=upgrade v=1.7.15 c=prod dry=false"},
		{`schedule add “@weekly” maintain backup`, "schedule add cron=@weekly tz= dur=0s ann=0s appr=false run=maintain c= acts=[backup]"},
		{"schedule list", "schedule list"},
		{"schedule pause w-3", "schedule pause w-3"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := Parse("/nocobase", tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(c); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func describe(c Command) string {
	switch c.Name {
	case "upgrade":
		return fmt.Sprintf("upgrade v=%s c=%s dry=%t", c.Proc.Version, c.Cluster, c.DryRun)
	case "maintain":
		s := make([]string, len(c.Proc.Actions))
		for i, a := range c.Proc.Actions {
			s[i] = a.String()
		}
		return fmt.Sprintf("maintain c=%s acts=[%s]", c.Cluster, strings.Join(s, ","))
	case "start", "status", "backups":
		return c.Name + " c=" + c.Cluster
	case "history":
		if c.Cluster != "" {
			return fmt.Sprintf("history n=%d c=%s", c.N, c.Cluster)
		}
		return fmt.Sprintf("history n=%d", c.N)
	case "cancel":
		return "cancel run=" + c.RunID
	case "schedule":
		sc := c.Schedule
		switch sc.Sub {
		case "add":
			return fmt.Sprintf("schedule add cron=%s tz=%s dur=%s ann=%s appr=%t run=%s", sc.Cron, sc.TZ, sc.Duration, sc.Announce, sc.Approval, describe(*sc.Run))
		case "list":
			return "schedule list"
		}
		return "schedule " + sc.Sub + " " + sc.ID
	}
	return c.Name
}

func TestParseErrorsCarryUsage(t *testing.T) {
	tests := []struct{ in, msg, usage string }{
		{"deploy", `unknown command "deploy"`, ""},
		{"upgrade", "which version?", "/nocobase upgrade <version> [cluster] [--dry-run] [--same-version] [--image <reference> instead of <version>] [--start-during-verify|--no-start-during-verify]"},
		{"upgrade newest", `"newest" is not a NocoBase version or tag`, "/nocobase upgrade"},
		{"upgrade 1.7.14;rm", "not a NocoBase version or tag", "/nocobase upgrade"},
		{"upgrade 1.7.14 prod extra", "too many arguments: extra", "/nocobase upgrade"},
		{"upgrade 1.7.14 --force", "unknown option --force", "/nocobase upgrade"},
		{"maintain plugin enable", "plugin needs an action and a package", "/nocobase maintain"},
		{"maintain plugin frob x", "plugin frob: expected enable, disable or add", "/nocobase maintain"},
		{"maintain plugin enable ../../etc", "is not a plugin name", "/nocobase maintain"},
		{"maintain restore", "restore needs a backup id", "/nocobase maintain"},
		{"history 0", `"0": expected a number from 1 to 100`, "/nocobase history [n]"},
		{"cancel", "which run?", "/nocobase cancel <run>"},
		{`schedule add "61 * * * *"`, "schedule add needs a cron expression in quotes and a procedure", "/nocobase schedule"},
		{`schedule add "@daily" deploy`, `a window runs upgrade, maintain or start, not "deploy"`, "/nocobase schedule"},
		{`schedule add "@daily" start --tz Mars/Base`, "not a time zone", "/nocobase schedule"},
		{`schedule add "@daily" upgrade 1.7.15 --dry-run`, "cannot run a --dry-run", "/nocobase schedule"},
		{`schedule add "@daily start`, "a quote is not closed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse("/nocobase", tt.in)
			ue, ok := err.(*UsageError)
			if !ok {
				t.Fatalf("err = %v, want a *UsageError", err)
			}
			if !strings.Contains(ue.Msg, tt.msg) || !strings.HasPrefix(ue.Usage, tt.usage) {
				t.Fatalf("got msg %q usage %q\nwant msg containing %q, usage starting %q", ue.Msg, ue.Usage, tt.msg, tt.usage)
			}
		})
	}
}

// Every help text is made from the command table: a chat's lists every
// command but a terminal's own, a terminal's every command, each with
// its usage and help line; the procedures' come from their registry.
func TestHelpListsEveryCommand(t *testing.T) {
	chat, term := Help("/nocobase", false), Help("nocobot", true)
	for _, c := range table() {
		line := strings.TrimSpace(c.name+" "+c.args) + " — " + c.help
		if !strings.Contains(term, "nocobot "+line) {
			t.Errorf("a terminal's help lacks %s", line)
		}
		if strings.Contains(chat, "/nocobase "+line) == c.terminal {
			t.Errorf("a chat's help: %s listed %t, terminal-only %t", c.name, !c.terminal, c.terminal)
		}
		if Usage("/nocobase", c.name) != strings.TrimSpace("/nocobase "+c.name+" "+c.args) {
			t.Errorf("usage of %s: %q", c.name, Usage("/nocobase", c.name))
		}
	}
	for _, p := range procedures.Procedures() {
		if !strings.Contains(chat, "/nocobase "+p.Usage+" — "+p.Help) {
			t.Errorf("help lacks the procedure %s", p.Usage)
		}
	}
	for _, name := range []string{"status", "history", "cancel", "backups", "traffic", "schedule", "help", "decide", "audit"} {
		if !strings.Contains(term, "nocobot "+name) {
			t.Errorf("a terminal's help lacks %s", name)
		}
	}
}

// TestReadmeListsEveryProcedure keeps the README's command table true to
// the procedures registry: a row per procedure, with its usage as parsed.
func TestReadmeListsEveryProcedure(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, p := range procedures.Procedures() {
		row := "| `" + strings.ReplaceAll(p.Usage, "|", `\|`) + "` |"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md has no command row %s", row)
		}
	}
}

// TestProcedureWordsParseAsTyped: a terminal's arguments parse without
// being quoted and split again.
func TestProcedureWordsParseAsTyped(t *testing.T) {
	c, err := ParseWords("nocobot run", []string{"maintain", "prod", "plugin", "enable", "@nocobase/plugin-map"})
	if err != nil {
		t.Fatal(err)
	}
	req := c.Request("terminal:alice", "terminal")
	if req.Cluster != "prod" || len(req.Actions) != 1 || req.Actions[0].Arg != "@nocobase/plugin-map" || req.Requester != "terminal:alice" {
		t.Fatalf("request %+v", req)
	}
	if _, err := ParseWords("nocobot run", []string{"upgrade", "1.7.14 prod"}); err == nil {
		t.Fatal(`one argument "1.7.14 prod" was split into two`)
	}
}

// A window's command is read by the table's parser, with the registry's
// answers: the same request and the same mistakes as a typed procedure.
func TestParseProcedureReadsAWindowsCommand(t *testing.T) {
	for _, line := range []string{"upgrade 1.7.15 prod", "maintain backup", `maintain plugin enable "@nocobase/plugin-map"`, "start"} {
		got, err := ParseProcedure(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		typed, err := Parse("/nocobase", line)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(typed.Proc) {
			t.Fatalf("%s: %+v, typed %+v (%v)", line, got, typed.Proc, err)
		}
	}
	for line, msg := range map[string]string{
		"deploy":         `unknown procedure "deploy" (expected upgrade, maintain or start)`,
		"status":         `unknown procedure "status"`,
		"upgrade newest": `"newest" is not a NocoBase version or tag`,
		`start "prod`:    "a quote is not closed",
	} {
		if _, err := ParseProcedure(line); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", line, err, msg)
		}
	}
}
