package docker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

// ensureSwarm makes the test engine a single-node swarm (listening on
// loopback ports of its own, so that several test engines on one machine
// do not collide) and leaves the swarm at the end if it made it.
func ensureSwarm(t *testing.T, host string) {
	t.Helper()
	e, err := NewEngine(EngineOptions{Host: host}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := ctxT(t)
	info, err := e.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Info.Swarm.LocalNodeState == swarm.LocalNodeStateActive {
		return
	}
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	_, err = e.cli.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: addr, AdvertiseAddr: addr, DataPathPort: freeUDPPort(t)})
	if err != nil {
		t.Skipf("docker swarm init does not work on this engine (%v): Swarm mode left untested here", err)
	}
	t.Cleanup(func() {
		e, _ := NewEngine(EngineOptions{Host: host}, zerolog.Nop())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = e.cli.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true})
		_ = e.Close()
	})
}

// freeUDPPort returns a UDP port in the range the engine accepts for the
// swarm data path (1024–49151) that was free a moment ago.
func freeUDPPort(t *testing.T) uint32 {
	for range 100 {
		p := 20000 + rand.IntN(29000)
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			_ = c.Close()
			return uint32(p)
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// slotPorts picks a port pattern 4<slot>NNN whose ports for slots 1–3 are
// free, since host-network tasks of one service share the loopback.
func slotPorts(t *testing.T) int {
	for range 100 {
		n := 100 + rand.IntN(900)
		free := true
		for slot := 1; slot <= 3; slot++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:4%d%d", slot, n))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			return n
		}
	}
	t.Fatal("no free ports")
	return 0
}

// TestSwarm runs the Swarm tests on one swarm: the engine leaves the
// swarm only when all of them are done.
func TestSwarm(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	ensureSwarm(t, host)
	t.Run("service", func(t *testing.T) { t.Parallel(); swarmService(t, host) })
	t.Run("first node runs", func(t *testing.T) { t.Parallel(); swarmFirstNodeRuns(t, host) })
}

func swarmService(t *testing.T, host string) {
	v1 := testenv.NodeImage(t, host, "1.0.0")
	v2 := testenv.NodeImage(t, host, "2.0.0")
	n := slotPorts(t)
	svcName := fmt.Sprintf("nb%d", os.Getpid()%100000+int(clusterSeq.Add(1))*100000)
	testenv.Docker(t, host, "service", "create", "--detach", "--name", svcName, "--replicas", "3", "--network", "host",
		"--no-resolve-image", "--stop-grace-period", "5s",
		"--label", fmt.Sprintf("%s=http://127.0.0.1:4{slot}%d", LabelURL, n),
		"--env", fmt.Sprintf("NOCOBASE_LISTEN=127.0.0.1:4{{.Task.Slot}}%d", n),
		"--env", "NOCOBASE_BOOT_TIME=200ms", v1)
	t.Cleanup(func() {
		e, _ := NewEngine(EngineOptions{Host: host}, zerolog.Nop())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = e.cli.ServiceRemove(ctx, svcName, client.ServiceRemoveOptions{})
		_ = e.Close()
	})
	url := func(slot int) string { return fmt.Sprintf("http://127.0.0.1:4%d%d", slot, n) }

	c, err := New(Options{EngineOptions: EngineOptions{Host: host}, SwarmService: svcName, StopTimeout: 10 * time.Second, StartTimeout: time.Minute},
		zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	node := func(k int) string { return fmt.Sprintf("%s.%d", svcName, k) }

	// Starting a started node waits for it to run.
	if err := c.Start(ctx, node(3)); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 || countRunning(nodes) != 3 {
		t.Fatalf("List: %+v", nodes)
	}
	for i, nd := range nodes {
		if nd.Name != node(i+1) || nd.Image != v1 || nd.URL != url(i+1) || nd.ID == "" {
			t.Errorf("node %d: %+v", i, nd)
		}
		waitHealthy(t, nd.URL)
	}

	if err := c.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	nodes, _ = c.List(ctx)
	if len(nodes) != 3 || countRunning(nodes) != 0 {
		t.Errorf("after StopAll: %+v", nodes)
	}
	for k := 1; k <= 3; k++ {
		if code, _ := get(url(k) + "/api/__health_check"); code != 0 {
			t.Errorf("slot %d still answers", k)
		}
	}
	// The set-image step calls SetImage for every node at once: one
	// service update, the other calls find it done.
	for name, err := range setImagesAtOnce(ctx, c, map[string]string{node(1): v2, node(2): v2, node(3): v2}) {
		if err != nil {
			t.Fatalf("SetImage %s at the same time as the others: %v", name, err)
		}
	}
	if img, _, _, err := c.Previous(ctx, node(2)); err != nil || img != v1 {
		t.Errorf("after the image change the previous image is %q (%v), want %s: more than one update", img, err, v1)
	}
	if err := c.Start(ctx, node(1)); err != nil {
		t.Fatal(err)
	}
	nodes, _ = c.List(ctx)
	if countRunning(nodes) != 1 || !nodes[0].Running() || nodes[0].Image != v2 {
		t.Errorf("after starting one: %+v", nodes)
	}
	waitHealthy(t, url(1))
	if _, body := get(url(1) + "/api/app:getInfo"); !strings.Contains(body, `"version":"2.0.0"`) {
		t.Errorf("first node reports %s", body)
	}
	if code, _ := get(url(2) + "/api/__health_check"); code != 0 {
		t.Error("a second node runs before StartRest")
	}
	if err := c.StartRest(ctx, node(1)); err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 3; k++ {
		waitHealthy(t, url(k))
		if _, body := get(url(k) + "/api/app:getInfo"); !strings.Contains(body, `"version":"2.0.0"`) {
			t.Errorf("slot %d reports %s", k, body)
		}
	}
	if err := c.SetImage(ctx, node(1), v1); err == nil || !strings.Contains(err.Error(), "stop all nodes first") {
		t.Errorf("SetImage on a running service: %v", err)
	}
	// Scale down to one node, as in-app maintenance does.
	for _, k := range []int{3, 2, 3} {
		if err := c.Stop(ctx, node(k)); err != nil {
			t.Fatal(err)
		}
	}
	nodes, _ = c.List(ctx)
	if countRunning(nodes) != 1 || !nodes[0].Running() {
		t.Errorf("after scaling down: %+v", nodes)
	}
	img, _, ref, err := c.Previous(ctx, node(1))
	if err != nil || img != v1 || ref == "" {
		t.Errorf("Previous: %q %q %v", img, ref, err)
	}
}

// swarmFirstNodeRuns: when Swarm's own choices leave slot 1 dead (its
// task failed, or a scale-down removed it), the first node is still a
// running task, the same one every time, and its URL answers.
func swarmFirstNodeRuns(t *testing.T, host string) {
	v1 := testenv.NodeImage(t, host, "1.0.0")
	n := slotPorts(t)
	svcName := fmt.Sprintf("nbf%d", os.Getpid()%100000+int(clusterSeq.Add(1))*100000)
	testenv.Docker(t, host, "service", "create", "--detach", "--name", svcName, "--replicas", "3", "--network", "host",
		"--no-resolve-image", "--stop-grace-period", "5s", "--restart-condition", "none",
		"--label", fmt.Sprintf("%s=http://127.0.0.1:4{slot}%d", LabelURL, n),
		"--env", fmt.Sprintf("NOCOBASE_LISTEN=127.0.0.1:4{{.Task.Slot}}%d", n),
		"--env", "NOCOBASE_BOOT_TIME=200ms", v1)
	t.Cleanup(func() { _, _ = exec.Command("docker", "-H", host, "service", "rm", svcName).CombinedOutput() })
	c, err := NewSwarm(Options{EngineOptions: EngineOptions{Host: host}, SwarmService: svcName, StopTimeout: 10 * time.Second, StartTimeout: time.Minute},
		zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	if err := c.Start(ctx, svcName+".3"); err != nil {
		t.Fatal(err)
	}
	svc, err := c.service(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.tasks(ctx, svc.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if tk.Slot == 1 && tk.Status.ContainerStatus != nil {
			testenv.Docker(t, host, "kill", tk.Status.ContainerStatus.ContainerID)
		}
	}
	firstRuns := func(when string, running int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			nodes, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if countRunning(nodes) == running {
				if !nodes[0].Running() || nodes[0].Name != svcName+".1" {
					t.Fatalf("%s: first node %+v does not run (nodes %+v)", when, nodes[0], nodes)
				}
				if nodes[0].URL == fmt.Sprintf("http://127.0.0.1:41%d", n) {
					t.Errorf("%s: first node's URL is dead slot 1's", when)
				}
				waitHealthy(t, nodes[0].URL)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d running, want %d: %+v", when, countRunning(nodes), running, nodes)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	firstRuns("slot 1 killed", 2)
	// In-app maintenance: keep the first node, stop the others.
	if err := c.Stop(ctx, svcName+".2"); err != nil {
		t.Fatal(err)
	}
	firstRuns("scaled down to one", 1)
}

func TestSwarmPositionsSortNumerically(t *testing.T) {
	var tasks []swarm.Task
	now := time.Now()
	for slot := 12; slot >= 1; slot-- {
		tk := swarm.Task{Slot: slot, DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: swarm.TaskStateRunning}}
		tk.Meta.CreatedAt = now
		switch slot {
		case 1: // shut down by a scale-down
			tk.DesiredState, tk.Status.State = swarm.TaskStateShutdown, swarm.TaskStateShutdown
		case 4: // starting
			tk.Status.State = swarm.TaskStateStarting
		}
		tasks = append(tasks, tk)
	}
	// An older, failed task of slot 3 is not what speaks for it.
	old := swarm.Task{Slot: 3, DesiredState: swarm.TaskStateShutdown, Status: swarm.TaskStatus{State: swarm.TaskStateFailed}}
	old.Meta.CreatedAt = now.Add(-time.Hour)
	tasks = append(tasks, old)
	var got []int
	for _, tk := range positions(tasks) {
		got = append(got, tk.Slot)
	}
	if want := []int{2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("positions hold slots %v, want %v (running by number, then starting)", got, want)
	}
}
