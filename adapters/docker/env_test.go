package docker

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

// A node's own environment is read as hashes, the image's defaults left
// out; a stopped node is re-created with one variable set or removed,
// keeping everything else, and starts as before.
func TestNodeEnvReadAndSet(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 2, "2.0.0", func(i int, s *testenv.NodeSpec) {
		key := []string{"APP_KEY=first-secret", "APP_KEY=second-secret"}[i]
		s.Env = append(s.Env, key, "DB_HOST=db")
		s.Args = []string{"--restart=always"}
	}, nil)
	ctx := ctxT(t)
	a, b := tc.names[0], tc.names[1]
	ha, err := tc.EnvHashes(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := tc.EnvHashes(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if ha["APP_KEY"] == "" || ha["APP_KEY"] == hb["APP_KEY"] || ha["DB_HOST"] != hb["DB_HOST"] {
		t.Fatalf("hashes: %v / %v", ha, hb)
	}
	if _, ok := ha["NOCOBASE_VERSION"]; ok {
		t.Fatalf("the image's own variable is listed: %v", ha)
	}
	for k, v := range ha {
		if strings.Contains(v, "secret") || v == "db" {
			t.Fatalf("%s: a value left the adapter: %q", k, v)
		}
	}

	if err := tc.SetEnv(ctx, a, "SKIP_SAME_VERSION_UPGRADE", "true"); !errors.Is(err, cerrdefs.ErrConflict) || !strings.Contains(errString(err), "stop it first") {
		t.Fatalf("set on a running node: %v", err)
	}
	oldID := tc.inspect(t, a).ID
	if err := tc.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetEnv(ctx, a, "SKIP_SAME_VERSION_UPGRADE", "true"); err != nil {
		t.Fatal(err)
	}
	ci := tc.inspect(t, a)
	if ci.ID == oldID || !slices.Contains(ci.Config.Env, "SKIP_SAME_VERSION_UPGRADE=true") || !slices.Contains(ci.Config.Env, "APP_KEY=first-secret") {
		t.Fatalf("re-created node: id %s (was %s), env %q", ci.ID, oldID, ci.Config.Env)
	}
	if ci.Config.Labels[LabelPreviousImage] != "" || ci.Config.Labels["com.docker.compose.service"] != "app" || ci.State.Running {
		t.Fatalf("labels %v, running %v", ci.Config.Labels, ci.State.Running)
	}
	// Already so: nothing is re-created.
	if err := tc.SetEnv(ctx, a, "SKIP_SAME_VERSION_UPGRADE", "true"); err != nil || tc.inspect(t, a).ID != ci.ID {
		t.Fatalf("a second identical set re-created the node: %v", err)
	}
	if err := tc.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, tc.nodes[0].URL)
	if pol := tc.inspect(t, a).HostConfig.RestartPolicy.Name; pol != "always" {
		t.Fatalf("restart policy after start: %q", pol)
	}
	if err := tc.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetEnv(ctx, a, "SKIP_SAME_VERSION_UPGRADE", ""); err != nil {
		t.Fatal(err)
	}
	if env := tc.inspect(t, a).Config.Env; slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "SKIP_SAME_VERSION_UPGRADE=") }) {
		t.Fatalf("variable still set: %q", env)
	}
	if h, _ := tc.EnvHashes(ctx, a); h["APP_KEY"] != ha["APP_KEY"] {
		t.Fatal("APP_KEY changed with the re-creation")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Plain containers have an environment each; a Swarm service's nodes
// share one, so its cluster has none to set.
func TestNodeEnvOnlyForContainers(t *testing.T) {
	c, err := New(Options{Labels: map[string]string{"app": "x"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.NodeEnv() == nil {
		t.Error("containers: no NodeEnv")
	}
	s, err := New(Options{SwarmService: "app"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.NodeEnv() != nil {
		t.Error("swarm: a NodeEnv")
	}
}

// A change interrupted after the node was set aside (only its
// <name>-nocobot-old container left) is finished by the next SetEnv: the
// node is back under its name, with the variable, and nothing is left over.
func TestSetEnvAfterAnInterruptedChange(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, 1, "2.0.0", func(i int, s *testenv.NodeSpec) {
		s.Env = append(s.Env, "APP_KEY=k1")
	}, nil)
	ctx := ctxT(t)
	name := tc.names[0]
	if err := tc.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	testenv.Docker(t, tc.host, "rename", name, name+oldSuffix)
	if err := tc.SetEnv(ctx, name, "SKIP_SAME_VERSION_UPGRADE", "true"); err != nil {
		t.Fatal(err)
	}
	ci := tc.inspect(t, name)
	if !slices.Contains(ci.Config.Env, "SKIP_SAME_VERSION_UPGRADE=true") || !slices.Contains(ci.Config.Env, "APP_KEY=k1") {
		t.Fatalf("env %q", ci.Config.Env)
	}
	if out := testenv.Docker(t, tc.host, "ps", "-a", "--filter", "name="+name+oldSuffix, "--format", "{{.Names}}"); out != "" {
		t.Fatalf("left over: %s", out)
	}
	if err := tc.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, tc.nodes[0].URL)
}

// A node whose tag was moved to another image since it was created (a
// pull, another cluster's upgrade) is never re-created on that image: it
// would start on another NocoBase version and run its upgrade beside the
// others. Without a digest to pin the image it runs, the change is
// refused, naming the way back; once the tag names its image again, the
// node is re-created on it.
func TestSetEnvNeverMovesANodeToAMovedTag(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	newer := testenv.NodeImage(t, host, "2.1.0")
	tag := fmt.Sprintf("local/moved-%d:2.0.0", os.Getpid())
	tc := newTestCluster(t, 1, "2.0.0", func(i int, s *testenv.NodeSpec) {
		testenv.Docker(t, host, "tag", s.Image, tag)
		s.Image = tag
	}, nil)
	ctx := ctxT(t)
	name := tc.names[0]
	if err := tc.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	before := tc.inspect(t, name)
	testenv.Docker(t, host, "tag", newer, tag)

	err := tc.SetEnv(ctx, name, "SKIP_SAME_VERSION_UPGRADE", "true")
	if err == nil || !strings.Contains(err.Error(), "now names another image") || !strings.Contains(err.Error(), "docker tag") {
		t.Fatalf("set on a moved tag: %v", err)
	}
	after := tc.inspect(t, name)
	if after.ID != before.ID || after.Image != before.Image {
		t.Fatalf("node re-created: %s on %s (was %s on %s)", after.ID, after.Image, before.ID, before.Image)
	}

	testenv.Docker(t, host, "tag", before.Image, tag)
	if err := tc.SetEnv(ctx, name, "SKIP_SAME_VERSION_UPGRADE", "true"); err != nil {
		t.Fatal(err)
	}
	if ci := tc.inspect(t, name); ci.Image != before.Image || !slices.Contains(ci.Config.Env, "SKIP_SAME_VERSION_UPGRADE=true") {
		t.Fatalf("re-created on %s (ran %s), env %q", ci.Image, before.Image, ci.Config.Env)
	}
}
