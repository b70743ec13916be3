package docker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

// setImagesAtOnce calls SetImage for every node from a goroutine of its
// own, all released together, as the set-image step does with
// StartParallelism 0, and returns each node's error.
func setImagesAtOnce(ctx context.Context, c *Cluster, refs map[string]string) map[string]error {
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for name, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			err := c.SetImage(ctx, name, ref)
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		}()
	}
	close(gate)
	wg.Wait()
	return errs
}

// Three stopped containers of one cluster change image at the same time,
// through one client, forward and back as a roll-back does: each keeps
// its name, labels, environment, mounts (its anonymous volume's data too)
// and restart policy, runs the new image once started, and the cluster is
// still exactly three nodes with no left-over container.
func TestSetImageConcurrently(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	v2 := testenv.NodeImage(t, host, "2.0.0")
	storage := testenv.TempDir(t)
	tc := newTestCluster(t, 3, "1.0.0", func(i int, s *testenv.NodeSpec) {
		s.Env = append(s.Env, "APP_KEY=secret-app-key", fmt.Sprintf("NODE_NO=%d", i+1), "NOCOBASE_STORAGE=/app/nocobase/storage")
		s.Mounts = []string{storage + ":/app/nocobase/storage", "/data"}
		s.Labels["team"] = "ops"
		s.Labels["node.no"] = fmt.Sprint(i + 1)
		s.Args = []string{"--restart", "always"}
	}, nil)
	c, err := New(Options{EngineOptions: EngineOptions{Host: host}, Labels: tc.opts.Labels, StopTimeout: 10 * time.Second},
		zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := ctxT(t)
	for i, n := range tc.nodes {
		waitHealthy(t, n.URL)
		// Something in each node's anonymous volume, which must follow it.
		testenv.Docker(t, host, "exec", n.Name, "sh", "-c", fmt.Sprintf("echo node-%d > /data/mark", i+1))
	}
	// The upgrade's stop: each node's restart policy held at "no".
	for _, name := range tc.names {
		if err := c.Stop(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]container.InspectResponse{}
	for _, name := range tc.names {
		before[name] = tc.inspect(t, name)
	}

	// change sets every node's image at once and checks the cluster.
	change := func(step string, refs map[string]string, version string) {
		t.Helper()
		for name, err := range setImagesAtOnce(ctx, c, refs) {
			if err != nil {
				t.Fatalf("%s: SetImage %s: %v", step, name, err)
			}
		}
		nodes, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name)
			if n.Running() {
				t.Errorf("%s: %s runs after SetImage; it must stay stopped", step, n.Name)
			}
		}
		if !slices.Equal(names, tc.names) {
			t.Fatalf("%s: List = %q, want exactly %q", step, names, tc.names)
		}
		if out := testenv.Docker(t, host, "ps", "-a", "--format", "{{.Names}}", "--filter", "label=com.docker.compose.project="+tc.opts.Labels["com.docker.compose.project"]); strings.Contains(out, oldSuffix) {
			t.Fatalf("%s: left-over containers: %s", step, out)
		}
		if left, err := c.Leftovers(ctx); err != nil || len(left) != 0 {
			t.Fatalf("%s: leftovers %+v %v", step, left, err)
		}
		for i, name := range tc.names {
			b, a := before[name], tc.inspect(t, name)
			if a.ID == b.ID {
				t.Errorf("%s: %s was not re-created", step, name)
			}
			if a.Config.Image != refs[name] {
				t.Errorf("%s: %s made from %q, want %q", step, name, a.Config.Image, refs[name])
			}
			for k, v := range b.Config.Labels {
				if k == "nocobot.test.content" || k == "org.opencontainers.image.version" || k == LabelPreviousImage || k == LabelPreviousDigest {
					continue // the image's own labels, and the record of the change
				}
				if a.Config.Labels[k] != v {
					t.Errorf("%s: %s label %s = %q, want %q", step, name, k, a.Config.Labels[k], v)
				}
			}
			env := strings.Join(a.Config.Env, " ")
			for _, e := range []string{"APP_KEY=secret-app-key", fmt.Sprintf("NODE_NO=%d", i+1), "NOCOBASE_VERSION=" + version} {
				if !strings.Contains(env, e) {
					t.Errorf("%s: %s env lacks %s: %q", step, name, e, a.Config.Env)
				}
			}
			if got, want := mounts(a), mounts(b); !slices.Equal(got, want) {
				t.Errorf("%s: %s mounts changed:\n before %q\n after  %q", step, name, want, got)
			}
			if p := a.HostConfig.RestartPolicy.Name; p != container.RestartPolicyDisabled {
				t.Errorf("%s: stopped %s has restart policy %q, want it held at no", step, name, p)
			}
			if pol, held, err := tc.RestartPolicyHeld(ctx, name); err != nil || !held || pol != "always" {
				t.Errorf("%s: %s restart policy record %q held=%v %v, want always", step, name, pol, held, err)
			}
		}
		// Started (as start-first and start-rest do), each runs its image
		// with its own volume and the shared storage, and gets "always" back.
		logged, _ := os.ReadFile(filepath.Join(storage, "starts.log"))
		for i, name := range tc.names {
			if err := c.Start(ctx, name); err != nil {
				t.Fatal(err)
			}
			waitHealthy(t, tc.nodes[i].URL)
			if _, body := get(tc.nodes[i].URL + "/api/app:getInfo"); !strings.Contains(body, `"version":"`+version+`"`) {
				t.Errorf("%s: %s reports %s, want %s", step, name, body, version)
			}
			if got := testenv.Docker(t, host, "exec", name, "cat", "/data/mark"); got != fmt.Sprintf("node-%d", i+1) {
				t.Errorf("%s: %s's volume holds %q", step, name, got)
			}
			if p := tc.inspect(t, name).HostConfig.RestartPolicy; p.Name != container.RestartPolicyAlways {
				t.Errorf("%s: %s restart policy after Start %q, want always", step, name, p.Name)
			}
		}
		log, _ := os.ReadFile(filepath.Join(storage, "starts.log"))
		if n := strings.Count(string(log[min(len(logged), len(log)):]), "version="+version); n != 3 {
			t.Errorf("%s: the shared storage saw %d starts on %s, want 3: %q", step, n, version, log)
		}
		for _, name := range tc.names {
			if err := c.Stop(ctx, name); err != nil {
				t.Fatal(err)
			}
			before[name] = tc.inspect(t, name)
		}
	}

	forward := map[string]string{}
	for _, name := range tc.names {
		forward[name] = v2
	}
	change("forward", forward, "2.0.0")

	back := map[string]string{}
	for _, name := range tc.names {
		_, _, ref, err := c.Previous(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		back[name] = ref
	}
	change("rollback", back, "1.0.0")
}

// BenchmarkSetImageThreeNodes times changing the image of three stopped
// nodes (back and forth between two versions): one after another, as the
// set-image step did, and all at once, as it does now.
//
//	scripts/test -run '^$' -bench SetImageThreeNodes -benchtime 10x ./adapters/docker/
func BenchmarkSetImageThreeNodes(b *testing.B) {
	host := testenv.DockerHost(b)
	imgs := []string{testenv.NodeImage(b, host, "1.0.0"), testenv.NodeImage(b, host, "2.0.0")}
	for _, mode := range []string{"one-by-one", "together"} {
		b.Run(mode, func(b *testing.B) {
			label := fmt.Sprintf("bench-%d-%d", os.Getpid(), clusterSeq.Add(1))
			var names []string
			for i := range 3 {
				n := testenv.RunNode(b, host, testenv.NodeSpec{Name: fmt.Sprintf("%s-app-%d", label, i+1), Image: imgs[0], Created: true,
					Labels: map[string]string{"nocobot.bench": label}, Env: []string{"APP_KEY=x", "DB_HOST=db"}, Args: []string{"--restart", "always"}})
				names = append(names, n.Name)
			}
			b.Cleanup(func() {
				for _, n := range names {
					_, _ = exec.Command("docker", "-H", host, "volume", "rm", "-f", holdVolume(n)).CombinedOutput()
				}
			})
			c, err := New(Options{EngineOptions: EngineOptions{Host: host}, Labels: map[string]string{"nocobot.bench": label}}, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := ctxT(b)
			b.ResetTimer()
			for i := range b.N {
				next := imgs[(i+1)%2]
				if mode == "together" {
					refs := map[string]string{}
					for _, n := range names {
						refs[n] = next
					}
					for n, err := range setImagesAtOnce(ctx, c, refs) {
						if err != nil {
							b.Fatalf("%s: %v", n, err)
						}
					}
					continue
				}
				for _, n := range names {
					if err := c.SetImage(ctx, n, next); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/3-nodes")
		})
	}
}
