package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

var clusterSeq atomic.Int64

// testCluster runs n stand-in nodes of version (with host networking, each
// on its own loopback port) under a label selector of their own, and a
// Cluster that selects them. names[i] is node i's name.
type testCluster struct {
	*Containers
	host  string
	names []string
	nodes []testenv.RunningNode
	label string
}

func newTestCluster(t *testing.T, n int, version string, spec func(i int, s *testenv.NodeSpec), opts func(*Options)) *testCluster {
	t.Helper()
	host := testenv.DockerHost(t)
	img := testenv.NodeImage(t, host, version)
	id := fmt.Sprintf("%d-%d", os.Getpid(), clusterSeq.Add(1))
	tc := &testCluster{host: host, label: id}
	for i := range n {
		s := testenv.NodeSpec{
			Name:   fmt.Sprintf("app-%s-%d", id, i+1),
			Image:  img,
			Labels: map[string]string{"com.docker.compose.project": "p" + id, "com.docker.compose.service": "app"},
			Env:    []string{"NOCOBASE_BOOT_TIME=200ms"},
		}
		if spec != nil {
			spec(i, &s)
		}
		node := testenv.RunNode(t, host, s)
		tc.nodes = append(tc.nodes, node)
		tc.names = append(tc.names, node.Name)
	}
	o := Options{
		EngineOptions: EngineOptions{Host: host},
		Labels:        map[string]string{"com.docker.compose.project": "p" + id, "com.docker.compose.service": "app"},
		StopTimeout:   10 * time.Second,
	}
	if opts != nil {
		opts(&o)
	}
	c, err := NewContainers(o, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	tc.Containers = c
	return tc
}

func (tc *testCluster) inspect(t *testing.T, name string) container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := tc.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return res.Container
}

// get fetches url's path and returns the status and body; status 0 means
// the connection was refused.
func get(url string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHealthy polls a node's health check until it answers 200 ok.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get(url + "/api/__health_check")
		if code == 200 && body == "ok" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy: %d %s", url, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestListFindsNodesInNameOrder(t *testing.T) {
	t.Parallel()
	// Created in the order 3, 1, 2; one with a Docker health check.
	order := []int{3, 1, 2}
	tc := newTestCluster(t, 3, "1.0.0", func(i int, s *testenv.NodeSpec) {
		s.Name = fmt.Sprintf("%s-%d", s.Name[:strings.LastIndex(s.Name, "-")], order[i])
		if order[i] == 2 {
			s.Args = []string{"--health-cmd", "true", "--health-interval", "1s"}
		}
	}, nil)
	// Same project, other service: not a node.
	testenv.RunNode(t, tc.host, testenv.NodeSpec{Image: testenv.NodeImage(t, tc.host, "1.0.0"),
		Labels: map[string]string{"com.docker.compose.project": tc.Labels()["com.docker.compose.project"], "com.docker.compose.service": "db"}, Created: true})

	nodes, err := tc.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("List found %d nodes, want 3: %+v", len(nodes), nodes)
	}
	byName := map[string]testenv.RunningNode{}
	for _, n := range tc.nodes {
		byName[n.Name] = n
	}
	for i, n := range nodes {
		if want := fmt.Sprintf("app-%s-%d", tc.label, i+1); n.Name != want {
			t.Errorf("node %d is %s, want %s", i, n.Name, want)
		}
		rn := byName[n.Name]
		ci := tc.inspect(t, n.Name)
		if n.ID != rn.ID || n.ID != ci.ID {
			t.Errorf("%s: id %s, want %s", n.Name, n.ID, rn.ID)
		}
		if n.Image != testenv.NodeImageRepo+":1.0.0" {
			t.Errorf("%s: image %q", n.Name, n.Image)
		}
		if n.Digest != ci.Image || !strings.HasPrefix(n.Digest, "sha256:") {
			t.Errorf("%s: digest %q, want the local image id %q (no registry digest)", n.Name, n.Digest, ci.Image)
		}
		if !n.Running() {
			t.Errorf("%s: state %q", n.Name, n.State)
		}
		if n.URL != rn.URL {
			t.Errorf("%s: url %q, want %q from its label", n.Name, n.URL, rn.URL)
		}
		if wantHealth := strings.HasSuffix(n.Name, "-2"); (n.Health != "") != wantHealth {
			t.Errorf("%s: health %q", n.Name, n.Health)
		}
	}
}

// Labels returns the selector, for tests.
func (c *Containers) Labels() map[string]string { return c.opts.Labels }

func TestURLFromNetwork(t *testing.T) {
	mk := func(mode string, nets map[string]string, label string) container.InspectResponse {
		ci := container.InspectResponse{Name: "/app-1", Config: &container.Config{Labels: map[string]string{}},
			HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(mode)}, NetworkSettings: &container.NetworkSettings{}}
		if label != "" {
			ci.Config.Labels[LabelURL] = label
		}
		ci.NetworkSettings.Networks = map[string]*netEndpoint{}
		for n, ip := range nets {
			ci.NetworkSettings.Networks[n] = endpoint(ip)
		}
		return ci
	}
	tests := []struct {
		name    string
		network string
		ci      container.InspectResponse
		want    string
	}{
		{"label wins", "prod", mk("prod", map[string]string{"prod": "10.0.0.5"}, "http://app-1.internal:8080/"), "http://app-1.internal:8080"},
		{"address on configured network", "prod", mk("prod", map[string]string{"prod": "10.0.0.5", "other": "10.1.0.5"}, ""), "http://10.0.0.5:13000"},
		{"only network", "", mk("prod", map[string]string{"prod": "10.0.0.5"}, ""), "http://10.0.0.5:13000"},
		{"stopped: name on the network", "prod", mk("prod", map[string]string{"prod": ""}, ""), "http://app-1:13000"},
		{"host network", "", mk("host", map[string]string{"host": ""}, ""), "http://127.0.0.1:13000"},
		{"not on the network", "prod", mk("other", map[string]string{"other": "10.1.0.5"}, ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Containers{base: base{opts: Options{Network: tt.network, Port: 13000}}}
			if got := c.url(tt.ci); got != tt.want {
				t.Errorf("url = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStopAndStart(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, "1.0.0", nil, func(o *Options) { o.StartParallelism = 2 })
	ctx := ctxT(t)
	n0 := tc.nodes[0]
	waitHealthy(t, n0.URL)

	start := time.Now()
	if err := tc.Stop(ctx, n0.Name); err != nil {
		t.Fatal(err)
	}
	ci := tc.inspect(t, n0.Name)
	if ci.State.Running || ci.State.ExitCode != 0 {
		t.Errorf("after Stop: running=%v exit code %d (want a clean exit on SIGTERM, not a kill)", ci.State.Running, ci.State.ExitCode)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %s; the node exits on SIGTERM at once", took)
	}
	if code, _ := get(n0.URL + "/api/__health_check"); code != 0 {
		t.Errorf("stopped node still answers: %d", code)
	}
	if err := tc.Stop(ctx, n0.Name); err != nil {
		t.Errorf("stopping a stopped node: %v", err)
	}

	if err := tc.Start(ctx, n0.Name); err != nil {
		t.Fatal(err)
	}
	if ci := tc.inspect(t, n0.Name); !ci.State.Running {
		t.Errorf("after Start: state %s", ci.State.Status)
	}
	waitHealthy(t, n0.URL)
	if err := tc.Start(ctx, n0.Name); err != nil {
		t.Errorf("starting a running node: %v", err)
	}

	// The upgrade's sequence: stop all, start one, start the rest.
	if err := tc.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	nodes, _ := tc.List(ctx)
	for _, n := range nodes {
		if n.Running() {
			t.Errorf("after StopAll %s is %s", n.Name, n.State)
		}
	}
	if err := tc.Start(ctx, tc.names[0]); err != nil {
		t.Fatal(err)
	}
	nodes, _ = tc.List(ctx)
	if running := countRunning(nodes); running != 1 {
		t.Errorf("after starting one node, %d run", running)
	}
	if err := tc.StartRest(ctx, tc.names[0]); err != nil {
		t.Fatal(err)
	}
	nodes, _ = tc.List(ctx)
	if running := countRunning(nodes); running != 3 {
		t.Errorf("after StartRest, %d of 3 run", running)
	}
	for _, n := range tc.nodes {
		waitHealthy(t, n.URL)
	}
}

func countRunning(nodes []ports.Node) int {
	n := 0
	for _, x := range nodes {
		if x.Running() {
			n++
		}
	}
	return n
}

func TestErrorsNameNodeAndAction(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, "1.0.0", nil, nil)
	outsider := testenv.RunNode(t, tc.host, testenv.NodeSpec{Image: testenv.NodeImage(t, tc.host, "1.0.0"), Created: true})
	ctx := ctxT(t)
	tests := []struct {
		name string
		call func() error
		want []string
	}{
		{"no such node", func() error { return tc.Stop(ctx, "nope-"+tc.label) }, []string{"nope-" + tc.label, "stop", "no such container"}},
		{"not a member", func() error { return tc.Start(ctx, outsider.Name) }, []string{outsider.Name, "start", "not a node of this cluster"}},
		{"running node", func() error { return tc.SetImage(ctx, tc.names[0], testenv.NodeImageRepo+":1.0.0x") }, []string{tc.names[0], "set image", "stop it first"}},
		{"exec in missing container", func() error { return tc.Exec(ctx, "nope-"+tc.label, []string{"true"}, nil, nil) }, []string{"nope-" + tc.label, `run "true"`, "not found"}},
		{"copy from missing path", func() error { _, err := tc.CopyFrom(ctx, tc.names[0], "/no/such/dir"); return err }, []string{tc.names[0], "copy from /no/such/dir", "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// An engine that is gone.
	gone, err := New(Options{EngineOptions: EngineOptions{Host: "unix://" + filepath.Join(t.TempDir(), "no.sock"), CallTimeout: 2 * time.Second},
		Labels: map[string]string{"a": "b"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	err = gone.Stop(ctx, "app-1")
	if err == nil || !strings.Contains(err.Error(), "app-1: stop: the Docker engine at ") {
		t.Errorf("engine gone: %v", err)
	}
}

func TestSetImageKeepsConfiguration(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	v2 := testenv.NodeImage(t, host, "2.0.0")
	storage := testenv.TempDir(t)
	tc := newTestCluster(t, 1, "1.0.0", func(i int, s *testenv.NodeSpec) {
		s.Env = append(s.Env, "APP_KEY=secret-app-key", "NOCOBASE_STORAGE=/app/nocobase/storage", "DB_HOST=db")
		s.Mounts = []string{storage + ":/app/nocobase/storage", "/data"}
		s.Labels["com.docker.compose.config-hash"] = "abc123"
		s.Labels["team"] = "ops"
		s.Args = []string{"--restart", "unless-stopped", "--health-cmd", "wget -q -O- http://127.0.0.1:1/ || true",
			"--health-interval", "5s", "--stop-timeout", "7", "--hostname", "app-host"}
		s.Cmd = []string{"-boot-time", "300ms"}
	}, nil)
	ctx := ctxT(t)
	name := tc.names[0]
	waitHealthy(t, tc.nodes[0].URL)
	if err := tc.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	before := tc.inspect(t, name)

	if err := tc.SetImage(ctx, name, v2); err != nil {
		t.Fatal(err)
	}
	after := tc.inspect(t, name)
	if after.ID == before.ID {
		t.Fatal("container was not re-created")
	}
	if after.State.Running {
		t.Error("SetImage started the node; it must stay stopped")
	}
	if after.Config.Image != v2 {
		t.Errorf("image %q, want %q", after.Config.Image, v2)
	}
	// The version comes from the image's environment: the new image's must
	// win, which shows the old image's defaults were not copied in.
	wantEnv := slices.Clone(before.Config.Env)
	for i, e := range wantEnv {
		if e == "NOCOBASE_VERSION=1.0.0" {
			wantEnv[i] = "NOCOBASE_VERSION=2.0.0"
		}
	}
	checks := []struct {
		field      string
		got, want  any
		equalSlice bool
	}{
		{"Env", sorted(after.Config.Env), sorted(wantEnv), true},
		{"Cmd", after.Config.Cmd, before.Config.Cmd, true},
		{"Entrypoint", after.Config.Entrypoint, before.Config.Entrypoint, true},
		{"Hostname", after.Config.Hostname, before.Config.Hostname, false},
		{"WorkingDir", after.Config.WorkingDir, before.Config.WorkingDir, false},
		{"StopTimeout", *after.Config.StopTimeout, *before.Config.StopTimeout, false},
		{"Healthcheck", fmt.Sprint(*after.Config.Healthcheck), fmt.Sprint(*before.Config.Healthcheck), false},
		{"Binds", after.HostConfig.Binds, before.HostConfig.Binds, true},
		{"RestartPolicy", after.HostConfig.RestartPolicy, before.HostConfig.RestartPolicy, false},
		{"NetworkMode", after.HostConfig.NetworkMode, before.HostConfig.NetworkMode, false},
		{"Mounts", mounts(after), mounts(before), true},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s changed:\n before %v\n after  %v", c.field, c.want, c.got)
		}
	}
	for k, v := range before.Config.Labels {
		if k == "nocobot.test.content" || k == "org.opencontainers.image.version" {
			continue // the image's own labels
		}
		if after.Config.Labels[k] != v {
			t.Errorf("label %s: %q, want %q", k, after.Config.Labels[k], v)
		}
	}
	if got := after.Config.Labels["org.opencontainers.image.version"]; got != "2.0.0" {
		t.Errorf("image label copied from the old image: %q", got)
	}
	if after.Config.Labels[LabelPreviousImage] != before.Config.Image || after.Config.Labels[LabelPreviousDigest] != before.Image {
		t.Errorf("previous image not recorded: %v", after.Config.Labels)
	}
	// compose still lists it: its project label selects it.
	nodes, err := tc.List(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].ID != after.ID {
		t.Errorf("List after SetImage: %+v %v", nodes, err)
	}
	// No copy of the old container is left behind.
	if out := testenv.Docker(t, host, "ps", "-aq", "--filter", "name="+name+oldSuffix); out != "" {
		t.Errorf("old container left: %s", out)
	}

	// It starts on the new version, with its storage.
	if err := tc.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, tc.nodes[0].URL)
	if _, body := get(tc.nodes[0].URL + "/api/app:getInfo"); !strings.Contains(body, `"version":"2.0.0"`) {
		t.Errorf("app:getInfo after SetImage: %s", body)
	}
	if log, _ := os.ReadFile(filepath.Join(storage, "starts.log")); !strings.Contains(string(log), "version=2.0.0") {
		t.Errorf("storage not mounted in the new container: starts.log = %q", log)
	}

	// Roll back with what Previous says.
	img, digest, ref, err := tc.Previous(ctx, name)
	if err != nil || img != before.Config.Image || digest != before.Image {
		t.Fatalf("Previous = %q %q %q %v", img, digest, ref, err)
	}
	if err := tc.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetImage(ctx, name, ref); err != nil {
		t.Fatal(err)
	}
	if err := tc.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, tc.nodes[0].URL)
	if _, body := get(tc.nodes[0].URL + "/api/app:getInfo"); !strings.Contains(body, `"version":"1.0.0"`) {
		t.Errorf("app:getInfo after rollback: %s", body)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func mounts(ci container.InspectResponse) []string {
	var out []string
	for _, m := range ci.Mounts {
		out = append(out, fmt.Sprintf("%s %s %s->%s rw=%v", m.Type, m.Name, m.Source, m.Destination, m.RW))
	}
	slices.Sort(out)
	return out
}

func TestSetImageFailureKeepsOldContainer(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	v2 := testenv.NodeImage(t, host, "2.0.0")
	// The node takes its volumes from a helper container; once the helper
	// is gone, creating a copy of the node fails.
	helper := testenv.RunNode(t, host, testenv.NodeSpec{Image: testenv.NodeImage(t, host, "1.0.0"), Created: true})
	tc := newTestCluster(t, 1, "1.0.0", func(i int, s *testenv.NodeSpec) {
		s.Args = []string{"--volumes-from", helper.Name}
		s.Created = true
	}, nil)
	testenv.Docker(t, host, "rm", helper.Name)
	ctx := ctxT(t)
	name := tc.names[0]
	before := tc.inspect(t, name)

	err := tc.SetImage(ctx, name, v2)
	if err == nil || !strings.Contains(err.Error(), name+": set image: create") {
		t.Fatalf("SetImage: %v", err)
	}
	after := tc.inspect(t, name)
	if after.ID != before.ID || after.Config.Image != before.Config.Image {
		t.Errorf("old container not restored: %s %s", after.ID, after.Config.Image)
	}

	// An image that is not on the engine fails before anything changes.
	err = tc.SetImage(ctx, name, testenv.NodeImageRepo+":9.9.9-missing")
	if err == nil || !strings.Contains(err.Error(), "pull it first") {
		t.Errorf("SetImage to a missing image: %v", err)
	}
	if tc.inspect(t, name).ID != before.ID {
		t.Error("node changed")
	}
}

func TestSetImageRecoversInterruptedChange(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	v2 := testenv.NodeImage(t, host, "2.0.0")
	tc := newTestCluster(t, 1, "1.0.0", func(i int, s *testenv.NodeSpec) { s.Created = true }, nil)
	name := tc.names[0]
	// As if a crash hit right after the rename.
	testenv.Docker(t, host, "rename", name, name+oldSuffix)
	if err := tc.SetImage(ctxT(t), name, v2); err != nil {
		t.Fatal(err)
	}
	if got := tc.inspect(t, name).Config.Image; got != v2 {
		t.Errorf("image %s", got)
	}
	if out := testenv.Docker(t, host, "ps", "-aq", "--filter", "name="+name+oldSuffix); out != "" {
		t.Errorf("old container left: %s", out)
	}
}

// TestStartFinishesAHalfMadeImageChange: a kill after the new container
// was created but before it was complete (here: it lacks the node's
// environment) leaves both containers; Start makes the node again from
// the leftover's configuration, then starts it.
func TestStartFinishesAHalfMadeImageChange(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	v2 := testenv.NodeImage(t, host, "2.0.0")
	tc := newTestCluster(t, 1, "1.0.0", func(i int, s *testenv.NodeSpec) {
		s.Created = true
		s.Env = append(s.Env, "APP_KEY=k1")
	}, nil)
	name := tc.names[0]
	ctx := ctxT(t)
	before := tc.inspect(t, name)
	testenv.Docker(t, host, "rename", name, name+oldSuffix)
	args := []string{"create", "--name", name, "--network", "host"}
	for k, v := range before.Config.Labels {
		args = append(args, "--label", k+"="+v)
	}
	testenv.Docker(t, host, append(args, v2)...)
	if left, err := tc.Leftovers(ctx); err != nil || len(left) != 1 || left[0].Node != name || !left[0].NodeExists {
		t.Fatalf("Leftovers = %+v, %v", left, err)
	}
	if err := tc.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	after := tc.inspect(t, name)
	if !after.State.Running || after.Config.Image != v2 || !slices.Contains(after.Config.Env, "APP_KEY=k1") {
		t.Errorf("after Start: running %v, image %s, env %q", after.State.Running, after.Config.Image, after.Config.Env)
	}
	if left, err := tc.Leftovers(ctx); err != nil || len(left) != 0 {
		t.Errorf("Leftovers after Start = %+v, %v", left, err)
	}
	waitHealthy(t, tc.nodes[0].URL)
}

func TestPullMissingTagFailsBeforeAnyNodeStops(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 3, "1.0.0", nil, nil)
	ctx := ctxT(t)
	var msgs []string
	err := tc.Pull(ctx, testenv.NodeImageRepo+":no-such-tag", func(m string) { msgs = append(msgs, m) })
	if err == nil {
		t.Fatal("pulling a missing tag succeeded")
	}
	if !strings.Contains(err.Error(), "pull "+testenv.NodeImageRepo+":no-such-tag") {
		t.Errorf("error does not name the pull: %v", err)
	}
	t.Logf("engine said: %v", err)
	nodes, err := tc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if countRunning(nodes) != 3 {
		t.Errorf("nodes stopped by a failed pull: %+v", nodes)
	}

	// With the "missing" policy an image already on the engine is used.
	tc.opts.PullPolicy = "missing"
	msgs = nil
	if err := tc.Pull(ctx, testenv.NodeImageRepo+":1.0.0", func(m string) { msgs = append(msgs, m) }); err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 || !strings.Contains(msgs[0], "already on the engine") {
		t.Errorf("progress: %q", msgs)
	}
}

// heapWatch samples the heap while f runs and returns the peak growth.
func heapWatch(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	<-stopped
	return peak - base
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func TestExecStreamsWithFlatMemory(t *testing.T) {
	// Not parallel: it measures the heap.
	tc := newTestCluster(t, 1, "1.0.0", nil, nil)
	ctx := ctxT(t)
	name := tc.names[0]
	const size = 200 << 20
	var w countWriter
	var err error
	growth := heapWatch(func() {
		err = tc.Exec(ctx, name, []string{"head", "-c", fmt.Sprint(size), "/dev/zero"}, nil, &w)
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.n != size {
		t.Errorf("got %d bytes, want %d", w.n, size)
	}
	t.Logf("streamed %d MB, heap grew by at most %.1f MB", size>>20, float64(growth)/(1<<20))
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MB while streaming %d MB: output is being buffered", growth>>20, size>>20)
	}

	// stdin reaches the command; stdout comes back.
	var out bytes.Buffer
	if err := tc.Exec(ctx, name, []string{"sh", "-c", "tr a-z A-Z"}, strings.NewReader("hello nocobase"), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "HELLO NOCOBASE" {
		t.Errorf("stdout %q", out.String())
	}

	// A failing command: exit code and the end of stderr in the error.
	err = tc.Exec(ctx, name, []string{"sh", "-c", "echo partial; seq 1 5000 >&2; echo 'pg_dump: error: connection refused' >&2; exit 3"}, nil, io.Discard)
	if err == nil {
		t.Fatal("failing command succeeded")
	}
	for _, want := range []string{name, "run a shell command", "exit code 3", "pg_dump: error: connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n1\n2\n") {
		t.Error("error carries all of stderr instead of its tail")
	}

	// Cancelling the context ends a long command's stream.
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = tc.Exec(cctx, name, []string{"sleep", "30"}, nil, io.Discard)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled exec: %v after %s", err, time.Since(start))
	}
}

func TestCopyFolderOutAndBack(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, "1.0.0", nil, nil)
	ctx := ctxT(t)
	src, dst := tc.names[0], tc.names[1]
	files := map[string]string{
		"uploads/a.txt":       "first file",
		"uploads/deep/b.bin":  strings.Repeat("\x00\x01binary", 10000),
		"uploads/deep/empty":  "",
		"uploads/plugins.txt": "@nocobase/plugin-x",
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sorted(mapKeys(files)) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(files[name]))
	}
	_ = tw.Close()
	if err := tc.CopyTo(ctx, src, "/app/nocobase/storage", &buf); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tc.Exec(ctx, src, []string{"cat", "/app/nocobase/storage/uploads/a.txt"}, nil, &out); err != nil || out.String() != "first file" {
		t.Fatalf("file in container: %q %v", out.String(), err)
	}

	// Out of a stopped container, as a backup of a stopped node does.
	if err := tc.Stop(ctx, src); err != nil {
		t.Fatal(err)
	}
	rc, err := tc.CopyFrom(ctx, src, "/app/nocobase/storage/uploads")
	if err != nil {
		t.Fatal(err)
	}
	var saved bytes.Buffer
	got := map[string]string{}
	tr := tar.NewReader(io.TeeReader(rc, &saved))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			got[h.Name] = string(b)
		}
	}
	_ = rc.Close()
	for name, want := range files {
		if got[name] != want {
			t.Errorf("copied out %s: %d bytes, want %d", name, len(got[name]), len(want))
		}
	}

	// And back into another node.
	if err := tc.CopyTo(ctx, dst, "/tmp", &saved); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := tc.Exec(ctx, dst, []string{"sh", "-c", "cat /tmp/uploads/plugins.txt; wc -c < /tmp/uploads/deep/b.bin"}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("@nocobase/plugin-x%d\n", len(files["uploads/deep/b.bin"])); strings.ReplaceAll(out.String(), " ", "") != want {
		t.Errorf("in the other node: %q, want %q", out.String(), want)
	}
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSecretsStayOutOfMessages(t *testing.T) {
	r := RegistryAuth{Username: "bot", Password: "hunter2"}
	o := Options{Registry: r}
	for _, s := range []string{r.String(), fmt.Sprintf("%v %+v %#v", r, o, o)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password shown: %s", s)
		}
	}
	var buf bytes.Buffer
	l := zerolog.New(&buf)
	l.Info().Interface("registry", r).Interface("options", o).Msg("x")
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("password logged: %s", buf.String())
	}
	if got := quoteCmd([]string{"sh", "-c", "PGPASSWORD=hunter2 pg_dump"}); strings.Contains(got, "hunter2") {
		t.Errorf("command shown with its secret: %s", got)
	}
}

func TestRegistryAuthFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	_ = os.WriteFile(cfg, []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"registry.example.com":{"username":"u2","password":"p2"}}}`), 0o600)
	tests := []struct{ domain, user, pass string }{
		{"docker.io", "user", "pass"},
		{"registry.example.com", "u2", "p2"},
		{"other.example.com", "", ""},
	}
	for _, tt := range tests {
		ac, err := authFromConfigFile(cfg, tt.domain)
		if err != nil {
			t.Fatal(err)
		}
		if tt.user == "" {
			if ac != nil {
				t.Errorf("%s: unexpected credentials", tt.domain)
			}
			continue
		}
		if ac == nil || ac.Username != tt.user || ac.Password != tt.pass {
			t.Errorf("%s: %+v", tt.domain, ac)
		}
	}
	_ = os.WriteFile(cfg, []byte(`{"auths": {"x": {"auth": "secret-garbage`), 0o600)
	if _, err := authFromConfigFile(cfg, "x"); err == nil || strings.Contains(err.Error(), "secret-garbage") {
		t.Errorf("bad file: %v", err)
	}
}

func TestPullProgressSumsLayers(t *testing.T) {
	p := newPullProgress("nocobase/nocobase:1.7.14")
	type m struct {
		id, status string
		cur, total int64
	}
	for _, x := range []m{
		{"1.7.14", "Pulling from nocobase/nocobase", 0, 0},
		{"aaa", "Pulling fs layer", 0, 0}, {"bbb", "Pulling fs layer", 0, 0}, {"ccc", "Already exists", 0, 0},
		{"aaa", "Downloading", 5 << 20, 10 << 20}, {"bbb", "Downloading", 1 << 20, 30 << 20},
	} {
		p.update(x.id, x.status, progressOf(x.cur, x.total))
	}
	if got, want := p.String(), "nocobase/nocobase:1.7.14: 1/3 layers, 6.0 MB of 40.0 MB"; got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
	p.update("aaa", "Pull complete", nil)
	p.update("bbb", "Download complete", nil)
	p.update("bbb", "Pull complete", nil)
	p.update("", "Digest: sha256:abc", nil)
	p.done = true
	if got, want := p.String(), "nocobase/nocobase:1.7.14: pulled, 3 layers, 40.0 MB, sha256:abc"; got != want {
		t.Errorf("final %q, want %q", got, want)
	}
}

func TestRecreateSpecNetworksAndDefaults(t *testing.T) {
	old := recordedInspect(t)
	img := recordedImageConfig(t)
	cfg, hc, primary, extra := recreateSpec(old, img, "nocobase/nocobase:1.7.15")
	if cfg.Image != "nocobase/nocobase:1.7.15" {
		t.Errorf("image %s", cfg.Image)
	}
	if cfg.Entrypoint != nil || cfg.Cmd != nil || cfg.WorkingDir != "" || cfg.Hostname != "" {
		t.Errorf("image defaults copied: entrypoint %q cmd %q workdir %q hostname %q", cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir, cfg.Hostname)
	}
	if want := []string{"APP_KEY=k", "DB_HOST=postgres"}; !slices.Equal(sorted(cfg.Env), want) {
		t.Errorf("env %q, want %q", cfg.Env, want)
	}
	if _, ok := cfg.Labels["org.opencontainers.image.version"]; ok {
		t.Error("image label copied")
	}
	if cfg.Labels["com.docker.compose.project"] != "prod" {
		t.Error("compose label lost")
	}
	ep := primary.EndpointsConfig["prod_default"]
	if ep == nil || !slices.Equal(ep.Aliases, []string{"prod-app-1", "app"}) {
		t.Errorf("primary network: %+v", primary.EndpointsConfig)
	}
	if e := extra["prod_backend"]; e == nil || !slices.Equal(e.Aliases, []string{"nocobase"}) {
		t.Errorf("extra networks: %+v", extra)
	}
	if len(hc.Mounts) != 1 || hc.Mounts[0].Source != "3f0c1e5d8a" || hc.Mounts[0].Target != "/data" {
		t.Errorf("anonymous volume not carried over: %+v", hc.Mounts)
	}
	if hc.RestartPolicy.Name != "always" || len(hc.Binds) != 1 {
		t.Errorf("host config: %+v", hc)
	}
}

func TestTCPWithTLS(t *testing.T) {
	srv, certDir := tlsEngine(t)
	defer srv.Close()
	c, err := New(Options{EngineOptions: EngineOptions{Host: "tcp://" + srv.Listener.Addr().String(), TLSCertPath: certDir, TLSVerify: true},
		Labels: map[string]string{"a": "b"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Ping(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if v != "1.41" {
		t.Errorf("negotiated API %s, want 1.41", v)
	}
	if _, err := c.List(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The same through the environment conventions.
	t.Setenv("DOCKER_HOST", "tcp://"+srv.Listener.Addr().String())
	t.Setenv("DOCKER_CERT_PATH", certDir)
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	e, err := NewEngine(EngineOptions{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Without the client certificate the engine refuses.
	_ = os.Remove(filepath.Join(certDir, "cert.pem"))
	_ = os.Remove(filepath.Join(certDir, "key.pem"))
	e2, err := NewEngine(EngineOptions{Host: "tcp://" + srv.Listener.Addr().String(), TLSCertPath: certDir, TLSVerify: true, CallTimeout: 3 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if _, err := e2.Ping(ctxT(t)); err == nil {
		t.Error("engine accepted a client without a certificate")
	} else if !errors.As(err, new(*Error)) {
		t.Errorf("error type %T: %v", err, err)
	}
}
