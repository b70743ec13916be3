package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/format"
)

// The tests in this file hold the command line to docs/cli.md: its JSON
// keys, exit codes and words, through the built binary.

// docKeys reads the key tables of docs/cli.md: each follows a
// "<!-- keys: name -->" line.
func docKeys(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	name := ""
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\|")
	for l := range strings.SplitSeq(string(b), "\n") {
		if m := regexp.MustCompile(`^<!-- keys: (.+) -->$`).FindStringSubmatch(l); m != nil {
			name = m[1]
			continue
		}
		if name == "" {
			continue
		}
		if m := row.FindStringSubmatch(l); m != nil {
			keys[name] = append(keys[name], m[1])
		} else if !strings.HasPrefix(l, "|") {
			if len(keys[name]) > 0 {
				name = ""
			}
		}
	}
	for _, want := range []string{"status", "node", "run", "backup", "window", "plan", "plan node", "step", "audit"} {
		if len(keys[want]) == 0 {
			t.Fatalf("docs/cli.md has no key table %q", want)
		}
	}
	return keys
}

// hasKeys checks that obj has exactly the documented keys.
func hasKeys(t *testing.T, what string, obj any, want []string) map[string]any {
	t.Helper()
	m, ok := obj.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a JSON object: %#v", what, obj)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	w := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, w) {
		t.Fatalf("%s has keys %v; docs/cli.md documents %v", what, got, w)
	}
	return m
}

func parseJSON(t *testing.T, what, out string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s: not JSON (%v):\n%s", what, err, out)
	}
	return v
}

// addBackup writes a finished backup's manifest where the cluster's
// backups are kept.
func addBackup(t *testing.T, conf, cluster string, created time.Time) string {
	id := cluster + "-" + created.UTC().Format("20060102T150405Z")
	dir := filepath.Join(filepath.Dir(conf), "backups-"+cluster, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	man := map[string]any{"format": 1, "id": id, "cluster": cluster, "nocobase_version": "1.7.14", "image": "nocobase/nocobase:1.7.14",
		"created": created.UTC(), "seconds": 3.5, "verified": true, "kind": "dump",
		"database": map[string]any{"dialect": "postgres", "name": "nocobase"}, "parts": []any{}}
	b, _ := json.Marshal(man)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return id
}

// Every --json output has exactly the keys docs/cli.md lists, and says
// what the text says: a run stopped at a failure waits for a decision.
func TestJSONKeysAsDocumented(t *testing.T) {
	keys := docKeys(t)
	conf := processConfig(t, trusted, "prod")
	backup := addBackup(t, conf, "prod", time.Now().Add(-2*time.Hour))
	// Docker cannot be reached: preflight fails, the run waits for Retry
	// or Abort, and the end of input leaves it so.
	code, out, errs := nocobotx(t, nil, "run", "maintain", "--config", conf)
	id := runIDRe.FindStringSubmatch(out)
	if code != 5 || id == nil {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	for range 2 {
		if code, out, errs := nocobotx(t, nil, "schedule", "add", "0 2 * * 6", "maintain", "--config", conf); code != 0 {
			t.Fatalf("schedule add: exit %d\n%s%s", code, out, errs)
		}
	}

	run := func(args ...string) string {
		t.Helper()
		code, out, errs := nocobotx(t, nil, append(args, "--config", conf)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		return out
	}
	checkRun := func(what string, v any) {
		t.Helper()
		r := hasKeys(t, what, v, keys["run"])
		if r["id"] != id[1] || r["state"] != "failed" || r["waiting"] != true || !strings.HasPrefix(r["status"].(string), "waiting for a decision: ") ||
			!slices.Contains(r["options"].([]any), any("abort")) || r["ended"] != nil {
			t.Fatalf("%s: %v", what, r)
		}
	}

	st := hasKeys(t, "status", parseJSON(t, "status", run("status", "--json")), keys["status"])
	checkRun("status running", st["running"])
	for _, n := range st["nodes"].([]any) {
		hasKeys(t, "status node", n, keys["node"])
	}
	if st["nodes_error"] == nil || len(st["nodes"].([]any)) != 0 {
		t.Fatalf("status: the nodes cannot be listed, yet: %v %v", st["nodes"], st["nodes_error"])
	}
	if b := hasKeys(t, "status latest_backup", st["latest_backup"], keys["backup"]); b["id"] != backup {
		t.Fatalf("latest backup %v, want %s", b["id"], backup)
	}
	ws := st["windows"].([]any)
	if len(ws) != 2 {
		t.Fatalf("status windows: %v", ws)
	}

	hist := parseJSON(t, "history", run("history", "--json")).([]any)
	if len(hist) != 1 {
		t.Fatalf("history: %v", hist)
	}
	checkRun("history run", hist[0])

	bs := parseJSON(t, "backups", run("backups", "--json")).([]any)
	if len(bs) != 1 {
		t.Fatalf("backups: %v", bs)
	}
	if b := hasKeys(t, "backup", bs[0], keys["backup"]); b["version"] != "1.7.14" || b["verified"] != true || b["age_seconds"].(float64) < 7100 {
		t.Fatalf("backup: %v", b)
	}

	list := parseJSON(t, "schedule list", run("schedule", "list", "--json")).([]any)
	if len(list) != 2 {
		t.Fatalf("schedule list: %v", list)
	}
	w0 := hasKeys(t, "window", list[0], keys["window"])
	w1 := hasKeys(t, "window", list[1], keys["window"])
	if !slices.Equal(w0["identical_to"].([]any), []any{w1["id"]}) || w0["next_run"] == nil || w0["skipped_start"] != nil {
		t.Fatalf("windows: %v\n%v", w0, w1)
	}

	pl := hasKeys(t, "plan", parseJSON(t, "plan", run("plan", "maintain", "--json")), keys["plan"])
	steps := pl["steps"].([]any)
	if len(steps) < 3 || pl["cluster"] != "prod" || pl["nodes_error"] == nil {
		t.Fatalf("plan: %v", pl)
	}
	for _, s := range append(steps, pl["rollback_steps"].([]any)...) {
		hasKeys(t, "plan step", s, keys["step"])
	}

	lines := strings.Split(strings.TrimSpace(run("audit", "--json", "--since", "1d")), "\n")
	if len(lines) < 5 {
		t.Fatalf("audit: %q", lines)
	}
	for _, l := range lines {
		hasKeys(t, "audit entry", parseJSON(t, "audit line", l), keys["audit"])
	}

	// The words say the same.
	if out := run("history"); !strings.Contains(out, "waiting for a decision") || strings.Contains(out, " failed ") {
		t.Fatalf("history:\n%s", out)
	}
	if out := run("status"); !strings.Contains(out, "Running: "+id[1]) || !strings.Contains(out, "waiting for a decision: ") {
		t.Fatalf("status:\n%s", out)
	}
}

// schedule list names the start that will run, not a skipped one; a
// window identical to another is warned about when added and listed.
func TestScheduleListWords(t *testing.T) {
	conf := processConfig(t, trusted, "prod")
	code, out, errs := nocobotx(t, nil, "schedule", "add", "0 2 * * 6", "maintain", "--config", conf)
	if code != 0 || strings.Contains(out, "identical") {
		t.Fatalf("first add: exit %d\n%s%s", code, out, errs)
	}
	first := regexp.MustCompile(`window (w-[a-z0-9]+)`).FindStringSubmatch(out)
	code, out, errs = nocobotx(t, nil, "schedule", "add", "0 2 * * 6", "maintain", "--config", conf)
	if code != 0 || first == nil || !strings.Contains(out, "Warning: it is identical to window "+first[1]) {
		t.Fatalf("second add: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := nocobotx(t, nil, "schedule", "skip", first[1], "--config", conf); code != 0 {
		t.Fatalf("skip: exit %d\n%s%s", code, out, errs)
	}
	_, out, _ = nocobotx(t, nil, "schedule", "list", "--json", "--config", conf)
	var ws []struct {
		ID      string     `json:"id"`
		NextRun *time.Time `json:"next_run"`
		Skipped *time.Time `json:"skipped_start"`
	}
	if err := json.Unmarshal([]byte(out), &ws); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var skipped time.Time
	for _, w := range ws {
		if w.ID != first[1] {
			continue
		}
		if w.Skipped == nil || w.NextRun == nil || !w.NextRun.Equal(w.Skipped.Add(7*24*time.Hour)) {
			t.Fatalf("skipped window: %+v", w)
		}
		skipped = *w.Skipped
	}
	if skipped.IsZero() {
		t.Fatalf("no window %s in %s", first[1], out)
	}
	_, out, _ = nocobotx(t, nil, "schedule", "list", "--config", conf)
	want := "next " + format.When(skipped.Add(7*24*time.Hour), "UTC") + " (" + format.When(skipped, "UTC") + " skipped)"
	if !strings.Contains(out, first[1]+": 0 2 * * 6 UTC, maintain on prod — "+want) || !strings.Contains(out, "identical to "+first[1]) {
		t.Fatalf("schedule list, want %q:\n%s", want, out)
	}
}

// The command line behaves as people expect: version and help flags,
// the error on one line with the usage after it, --flag in the help,
// NOCOBOT_CONFIG, durations in days, and exit codes by kind of failure.
func TestCommandLineConventions(t *testing.T) {
	conf := processConfig(t, trusted, "prod")
	env := []string{"NOCOBOT_CONFIG=" + conf}
	for _, c := range []struct {
		args      []string
		env       []string
		code      int
		out, err  string
		usageLine string // the second line of stderr
	}{
		{args: []string{"--version"}, out: "nocobot "},
		{args: []string{"-v"}, out: "nocobot "},
		{args: []string{"help", "--help"}, out: "Usage: nocobot [global flags] <command> [args]"},
		{args: []string{"help", "-h"}, out: "Exit codes, the same in every command"},
		{args: []string{"status", "-h"}, out: "--config FILE"},
		{args: []string{"help", "audit"}, out: "--since DURATION"},
		{args: []string{"history", "--help"}, out: "6 not found"},
		{args: []string{"history"}, env: env, out: "No runs yet."},
		{args: []string{"status", "--json"}, env: env, out: `"cluster": "prod"`},
		{args: []string{"audit", "--since", "1d"}, env: env, out: "TIME"},
		{args: []string{"audit", "--since", "2w1d", "--json"}, env: env},
		{args: []string{"history", "--config", "/nonexistent/nocobot.yaml"}, env: env, code: 1, err: "/nonexistent/nocobot.yaml"},
		{args: []string{"audit", "--since", "soon"}, env: env, code: 2, err: `nocobot audit: --since soon: "soon" is not a duration`, usageLine: "Usage: nocobot audit [--since 1d]"},
		{args: []string{"audit", "-n", "many"}, env: env, code: 2, err: "nocobot audit: -n many: expected a whole number, e.g. 50", usageLine: "Usage: nocobot audit"},
		{args: []string{"history", "--frob"}, env: env, code: 2, err: "nocobot history: unknown flag --frob", usageLine: "Usage: nocobot history [n]"},
		{args: []string{"frobnicate"}, code: 2, err: `nocobot: unknown command "frobnicate"`, usageLine: "Usage: nocobot [global flags] <command>"},
		{args: []string{"status", "staging"}, env: env, code: 6, err: `nocobot status: unknown cluster "staging" (known: prod)`, usageLine: "Usage: nocobot status [cluster]"},
		{args: []string{"backups", "staging"}, env: env, code: 6, err: `unknown cluster "staging"`},
		{args: []string{"plan", "start", "staging"}, env: env, code: 6, err: `unknown cluster "staging"`},
		{args: []string{"run", "start", "staging"}, env: env, code: 6, err: `unknown cluster "staging"`},
		{args: []string{"traffic", "on", "staging"}, env: env, code: 6, err: `unknown cluster "staging"`},
		{args: []string{"decide", "r1-zzzz", "abort"}, env: env, code: 6, err: "There is no run r1-zzzz."},
		{args: []string{"cancel", "r1-zzzz"}, env: env, code: 6, err: "There is no run r1-zzzz."},
		{args: []string{"schedule", "pause", "w-zzzz"}, env: env, code: 6, err: "There is no window w-zzzz."},
		{args: []string{"schedule", "add", "0 2 * * 6", "maintain", "--duration", "1x"}, env: env, code: 2, err: "--duration 1x: expected a duration such as 30m, 2h or 1d"},
		{args: []string{"schedule", "add", "0 2 * * 6", "maintain", "--duration", "1d", "--announce", "1w"}, env: env, out: "scheduled window"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errs := nocobotx(t, c.env, c.args...)
			lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
			if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(lines[0], c.err) {
				t.Fatalf("exit %d, out %q, err %q\nwant exit %d, out containing %q, first error line containing %q", code, out, errs, c.code, c.out, c.err)
			}
			switch {
			case c.code == 0:
			case c.usageLine != "" && (len(lines) != 2 || !strings.HasPrefix(lines[1], c.usageLine)):
				t.Fatalf("want the error, then %q on the next line; got %q", c.usageLine, errs)
			case c.usageLine == "" && c.code != 2 && len(lines) > 2:
				t.Fatalf("error is more than two lines: %q", errs)
			}
		})
	}
	// --help shows flags as they are typed, never -config.
	_, out, _ := nocobotx(t, nil, "run", "--help")
	if strings.Contains(out, "\n  -config") || !strings.Contains(out, "\n  --config FILE") {
		t.Fatalf("run --help:\n%s", out)
	}
}

// docs/cli.md and the README list every command nocobot help lists, and
// the exit codes it gives.
func TestDocsListEveryCommand(t *testing.T) {
	_, help, _ := nocobotx(t, nil, "help")
	_, cmds, _ := strings.Cut(help, "Commands:\n")
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	for _, f := range []string{"docs/cli.md", "README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		for l := range strings.SplitSeq(cmds, "\n") {
			if w := strings.Fields(l); len(w) > 0 && strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
				if !strings.Contains(doc, "| `nocobot "+w[0]) {
					t.Errorf("%s: no table row for nocobot %s", f, w[0])
				}
			}
		}
		for code := range 7 {
			if !regexp.MustCompile(`(?m)^\| ` + string(rune('0'+code)) + ` \| \S`).MatchString(doc) {
				t.Errorf("%s: exit code %d is not in its table", f, code)
			}
		}
	}
}
