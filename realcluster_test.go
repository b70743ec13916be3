package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
)

// On a real Docker engine with stand-in NocoBase nodes: a first start
// interrupted at a terminal (Ctrl-C, leave) while its first node boots,
// then taken over by nocobot attach from another process, which repeats
// the step that is safe to repeat and starts every node.
func TestRealClusterInterruptedAndAttached(t *testing.T) {
	host := testenv.DockerHost(t)
	image := testenv.NodeImage(t, host, "1.7.13")
	tag := fmt.Sprintf("term-%d", os.Getpid())
	var names []string
	for range 2 {
		n := testenv.RunNode(t, host, testenv.NodeSpec{Image: image, Created: true,
			Labels: map[string]string{"nocobot.termtest": tag}, Env: []string{"NOCOBASE_BOOT_TIME=4s"}})
		names = append(names, n.Name)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nocobot.yaml")
	body := fmt.Sprintf(`store: {path: %s}
access: {trust_terminal: true}
clusters:
  - name: prod
    docker: {host: %q}
    nodes: {labels: {nocobot.termtest: %s}}
    load_balancer: {type: none}
    backup: {destination: %s, database: {container: db, name: nocobase}}
`, filepath.Join(dir, "n.db"), host, tag, filepath.Join(dir, "backups"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	p := startPTY(t, "run", "start", "--config", conf)
	id := runID(t, p.proc)
	waitOut(t, p.out, "/6 Start one node", 60*time.Second)
	p.typeIn("\x03")
	waitOut(t, p.out, "Choose a, l or k", 10*time.Second)
	p.typeIn("l\n")
	if c := p.exit(t, 30*time.Second); c != 5 {
		t.Fatalf("run exit %d\n%s", c, p.out)
	}
	if !strings.Contains(p.out.String(), "Continue it with: nocobot attach "+id) {
		t.Fatalf("run output:\n%s", p.out)
	}

	a := start(t, nil, "attach", id, "--config", conf)
	if c := a.exit(t, 120*time.Second); c != 0 {
		t.Fatalf("attach exit %d\n%s%s", c, a.out, a.err)
	}
	for _, want := range []string{"no other process drives it, so this one does now", "safe to repeat", "First start of prod succeeded"} {
		if !strings.Contains(a.out.String(), want) {
			t.Fatalf("attach output lacks %q:\n%s", want, a.out)
		}
	}
	for _, n := range names {
		if got := testenv.Docker(t, host, "inspect", "-f", "{{.State.Running}}", n); got != "true" {
			t.Fatalf("%s running: %s", n, got)
		}
	}
}
