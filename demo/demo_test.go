package demo

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

// TestDemoAuto runs the built nocobot binary's `demo --auto` as a separate
// process, as CI and a newcomer do, and checks that it shows what it
// promises: the upgrade's checkpoint, the roll back, the plugin action and
// the maintenance window, and that it exits 0.
func TestDemoAuto(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute")
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "nocobot")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "demo", "--auto")
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	out := stdout.String()
	t.Logf("nocobot demo --auto took %s", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("nocobot demo --auto: %v\nstderr: %s\nstdout:\n%s", err, stderr.String(), out)
	}
	for _, want := range []string{
		"SIMULATED",
		"prod runs 2.2.16 on one node (nocobase/nocobase:2.2.16). Check it works", // the upgrade's checkpoint
		"Upgrade of prod from 2.2.15 to 2.2.16 succeeded",                         // … continued
		"Roll back: restore the database and storage",                             // the roll back
		"Upgrade of prod from 2.2.16 to 2.3.0 rolled back",                        // … ended rolled back
		"POST /api/pm:enable?filterByTk=@nocobase/plugin-map",                     // the plugin action
		"plugin @nocobase/plugin-map enabled",                                     // … done
		"window: Maintenance window weekly-backup",                                // the window announced
		"opened at Sat",                                         // … and opened
		"Maintenance of prod: backup succeeded",                 // its run
		"✔ maintain backup                              window", // the summary
		"Cluster: 3/3 nodes running 2.2.16, database at 2.2.16, traffic normal",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^✖`).MatchString(out) || stderr.Len() > 0 {
		t.Errorf("the demo reports a problem:\nstderr: %s", stderr.String())
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestReportFails: --auto fails when a run ends otherwise than the script
// says, or the cluster broke a safety rule.
func TestReportFails(t *testing.T) {
	var out bytes.Buffer
	p := &player{o: Options{Auto: true, Out: &out}, sim: newCluster(realistic, "2.2.16", "a", "b")}
	ok := []result{}
	for _, sc := range scenes {
		ok = append(ok, result{scene: sc, run: store.Run{State: sc.want}})
	}
	if err := p.report(ok); err != nil {
		t.Fatalf("every run as expected: %v", err)
	}
	bad := append([]result(nil), ok...)
	bad[1].run.State = store.StateSucceeded // the roll back did not happen
	if err := p.report(bad); err == nil || !strings.Contains(err.Error(), "upgrade 2.3.0 ended succeeded, expected rolled back") {
		t.Fatalf("a run that did not roll back: %v", err)
	}
	if err := p.report(ok[:2]); err == nil || !strings.Contains(err.Error(), "stopped after 2 of 4") {
		t.Fatalf("missing runs: %v", err)
	}
}
