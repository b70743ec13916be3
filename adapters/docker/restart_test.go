package docker

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

// TestDaemonRestartDoesNotStartStoppedNodes restarts a real Docker daemon
// in the middle of an upgrade: two nodes with restart policy "always" are
// stopped by nocobot, one of them already re-created on the new image.
// The daemon must start neither; a container with the same policy stopped
// by hand (docker stop) shows that the daemon does start such containers.
// After Start the nodes have "always" again, and a second daemon restart
// brings them back up as their policy says.
func TestDaemonRestartDoesNotStartStoppedNodes(t *testing.T) {
	t.Parallel()
	d := testenv.OwnDockerd(t)
	host := d.Host
	v1 := testenv.NodeImage(t, host, "1.0.0")
	v2 := testenv.NodeImage(t, host, "2.0.0")
	label := fmt.Sprintf("nocobot.restart-test=%d", os.Getpid())
	k, v, _ := strings.Cut(label, "=")
	var names []string
	for i := range 2 {
		n := testenv.RunNode(t, host, testenv.NodeSpec{Name: fmt.Sprintf("app-%d", i+1), Image: v1,
			Labels: map[string]string{k: v}, Args: []string{"--restart", "always"}, Env: []string{"NOCOBASE_BOOT_TIME=100ms"}})
		names = append(names, n.Name)
	}
	control := testenv.RunNode(t, host, testenv.NodeSpec{Name: "by-hand", Image: v1, Args: []string{"--restart", "always"}})
	testenv.Docker(t, host, "stop", control.Name)

	c, err := NewContainers(Options{EngineOptions: EngineOptions{Host: host}, Labels: map[string]string{k: v}, StopTimeout: 5 * time.Second},
		zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	for _, n := range names {
		if err := c.Stop(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetImage(ctx, names[1], v2); err != nil {
		t.Fatal(err)
	}

	state := func(name string) string {
		return testenv.Docker(t, host, "inspect", "--format", "{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}", name)
	}
	d.Stop(t)
	d.Start(t)
	// The daemon restarts containers in the background after it answers.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.HasPrefix(state(control.Name), "running") {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not restart the container stopped by hand (%s): the test proves nothing", state(control.Name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // the nodes, had they been started, would be by now
	for _, n := range names {
		if st := state(n); st != "exited no" && st != "created no" {
			t.Errorf("%s after the daemon restart: %s, want stopped with policy no", n, st)
		}
	}

	for _, n := range names {
		if err := c.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
		if st := state(n); st != "running always" {
			t.Errorf("%s after Start: %s, want running always", n, st)
		}
		if pol, held, err := c.RestartPolicyHeld(ctx, n); held || err != nil {
			t.Errorf("%s: restart policy still recorded as held (%s, %v)", n, pol, err)
		}
	}
	d.Stop(t)
	d.Start(t)
	for _, n := range names {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.HasPrefix(state(n), "running") {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not come back after a daemon restart: %s", n, state(n))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
