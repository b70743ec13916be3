package docker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

// killProxy stands between a child process and the engine, counts the
// child's engine calls, and SIGKILLs the child when call killAt arrives,
// before the engine sees it. So a run with killAt = N leaves the engine
// exactly as a kill of nocobot between call N-1 and call N would.
type killProxy struct {
	sock string
	srv  *http.Server

	runMu sync.Mutex // one child at a time: the count is one child's calls

	mu     sync.Mutex
	calls  []string
	killAt int
	child  *os.Process
	killed bool
}

func newKillProxy(t *testing.T, engineHost string) *killProxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "dkp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	target := strings.TrimPrefix(engineHost, "unix://")
	p := &killProxy{sock: filepath.Join(dir, "d.sock")}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", target)
		}},
	}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.calls = append(p.calls, r.Method+" "+r.URL.Path)
		kill := len(p.calls) == p.killAt && p.child != nil
		if kill {
			_ = p.child.Signal(syscall.SIGKILL)
			p.killed = true
		}
		p.mu.Unlock()
		if kill {
			http.Error(w, "killed", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	l, err := net.Listen("unix", p.sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.srv.Serve(l) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// run runs the crash child (TestCrashChild) with op and its arguments
// through the proxy, killing it at call killAt (0: never). It returns the
// calls the child made and whether it was killed; a child that fails
// without being killed fails the test.
func (p *killProxy) run(t *testing.T, killAt int, labels string, op ...string) ([]string, bool) {
	t.Helper()
	p.runMu.Lock()
	defer p.runMu.Unlock()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NOCOBOT_CRASH_CHILD=1", "NOCOBOT_CRASH_HOST=unix://"+p.sock,
		"NOCOBOT_CRASH_LABELS="+labels, "NOCOBOT_CRASH_OP="+strings.Join(op, " "))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	p.mu.Lock()
	p.calls, p.killAt, p.killed = nil, killAt, false
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		t.Fatal(err)
	}
	p.child = cmd.Process
	p.mu.Unlock()
	err := cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.child = nil
	if err != nil && !p.killed {
		t.Fatalf("child %v (kill at %d): %v\n%s", op, killAt, err, out.String())
	}
	return append([]string(nil), p.calls...), p.killed
}

// TestCrashChild is the process that TestSetImageSurvivesKills kills: it
// runs one adapter operation and exits.
func TestCrashChild(t *testing.T) {
	if os.Getenv("NOCOBOT_CRASH_CHILD") == "" {
		t.Skip("run as a child by TestSetImageSurvivesKills")
	}
	k, v, _ := strings.Cut(os.Getenv("NOCOBOT_CRASH_LABELS"), "=")
	c, err := NewContainers(Options{EngineOptions: EngineOptions{Host: os.Getenv("NOCOBOT_CRASH_HOST")},
		Labels: map[string]string{k: v}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	op := strings.Fields(os.Getenv("NOCOBOT_CRASH_OP"))
	switch op[0] {
	case "set-image":
		err = c.SetImage(ctx, op[1], op[2])
	case "cleanup":
		_, err = c.Cleanup(ctx)
	default:
		err = fmt.Errorf("unknown op %q", op)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestSetImageSurvivesKills kills the process at every engine call of an
// image change — forward to a new image, and back to the old one by its
// id as a rollback does — then runs again in a fresh process, and checks
// that the node was never lost: listed after the kill (stopped), on the
// expected image after the retry, with no left-over container, and its
// restart policy ("always") held while stopped and back after Start.
func TestSetImageSurvivesKills(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	v1 := testenv.NodeImage(t, host, "1.0.0")
	v2 := testenv.NodeImage(t, host, "2.0.0")
	v1ID := testenv.Docker(t, host, "image", "inspect", "--format", "{{.Id}}", v1)
	v2ID := testenv.Docker(t, host, "image", "inspect", "--format", "{{.Id}}", v2)

	// newNode makes a stopped node with restart policy always, on v1, or
	// on v2 by an image change (so that it records v1 as its previous
	// image), and returns its name and label selector.
	newNode := func(t *testing.T, onV2 bool) (*Containers, string, string) {
		label := fmt.Sprintf("nocobot.crash=%d-%d", os.Getpid(), clusterSeq.Add(1))
		k, v, _ := strings.Cut(label, "=")
		n := testenv.RunNode(t, host, testenv.NodeSpec{Image: v1, Created: true, Labels: map[string]string{k: v},
			Args: []string{"--restart", "always"}, Env: []string{"APP_KEY=k1"}})
		t.Cleanup(func() {
			_, _ = exec.Command("docker", "-H", host, "volume", "rm", "-f", holdVolume(n.Name)).CombinedOutput()
		})
		c, err := NewContainers(Options{EngineOptions: EngineOptions{Host: host}, Labels: map[string]string{k: v}, StopTimeout: 5 * time.Second}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if onV2 {
			if err := c.SetImage(ctxT(t), n.Name, v2); err != nil {
				t.Fatal(err)
			}
		}
		return c, n.Name, label
	}

	// check asserts what a user would: exactly one node, named name, on
	// wantID, not running, no leftover, restart policy held; then that
	// Start brings it up with its policy back.
	check := func(t *testing.T, c *Containers, name, wantID string) {
		t.Helper()
		ctx := ctxT(t)
		nodes, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || nodes[0].Name != name || nodes[0].Running() {
			t.Fatalf("nodes after the retry: %+v", nodes)
		}
		ci, err := c.inspectNode(ctx, name, "check")
		if err != nil {
			t.Fatal(err)
		}
		if ci.Image != wantID {
			t.Errorf("node on image %s, want %s", ci.Image, wantID)
		}
		if !strings.Contains(strings.Join(ci.Config.Env, " "), "APP_KEY=k1") {
			t.Errorf("configuration lost: env %q", ci.Config.Env)
		}
		if left, err := c.Leftovers(ctx); err != nil || len(left) != 0 {
			t.Errorf("leftovers: %+v %v", left, err)
		}
		if out := testenv.Docker(t, host, "ps", "-aq", "--filter", "name="+name+oldSuffix); out != "" {
			t.Errorf("left-over container %s%s outlived the image change", name, oldSuffix)
		}
		if ci.HostConfig.RestartPolicy.Name != "no" {
			t.Errorf("stopped node's restart policy is %q, want it held at no", ci.HostConfig.RestartPolicy.Name)
		}
		if err := c.Start(ctx, name); err != nil {
			t.Fatal(err)
		}
		ci, _ = c.inspectNode(ctx, name, "check")
		if ci.HostConfig.RestartPolicy.Name != "always" || !ci.State.Running {
			t.Errorf("after Start: policy %q running %v, want always and running", ci.HostConfig.RestartPolicy.Name, ci.State.Running)
		}
		if _, held, _ := c.RestartPolicyHeld(ctx, name); held {
			t.Error("restart policy record left after Start")
		}
	}

	for _, dir := range []struct {
		name         string
		fromV2       bool
		target       func(t *testing.T, c *Containers, name string) string
		wantID, from string
	}{
		{"forward", false, func(*testing.T, *Containers, string) string { return v2 }, v2ID, v1ID},
		{"rollback", true, func(t *testing.T, c *Containers, name string) string {
			_, _, ref, err := c.Previous(ctxT(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return ref
		}, v1ID, v2ID},
	} {
		t.Run(dir.name, func(t *testing.T) {
			t.Parallel()
			proxy := newKillProxy(t, host)
			c, name, label := newNode(t, dir.fromV2)
			target := dir.target(t, c, name)
			calls, _ := proxy.run(t, 0, label, "set-image", name, target)
			t.Logf("%s: %d engine calls: %s", dir.name, len(calls), strings.Join(calls, ", "))
			check(t, c, name, dir.wantID)
			for n := 1; n <= len(calls); n++ {
				t.Run(fmt.Sprintf("kill at call %d %s", n, shortCall(calls[n-1], name)), func(t *testing.T) {
					t.Parallel()
					proxy := newKillProxy(t, host)
					c, name, label := newNode(t, dir.fromV2)
					if _, killed := proxy.run(t, n, label, "set-image", name, target); !killed {
						t.Fatalf("child finished before call %d", n)
					}
					// A fresh process sees the node, whatever the kill left.
					nodes, err := c.List(ctxT(t))
					if err != nil || len(nodes) != 1 || nodes[0].Name != name || nodes[0].Running() {
						t.Fatalf("after the kill List = %+v, %v; want %s, stopped", nodes, err, name)
					}
					if got := nodes[0].Digest; got != dir.wantID && got != dir.from {
						t.Errorf("after the kill the node is on %s", got)
					}
					if n%2 == 0 {
						// The engine's way out of an abandoned run.
						proxy.run(t, 0, label, "cleanup")
						if left, _ := c.Leftovers(ctxT(t)); len(left) != 0 {
							t.Errorf("leftovers after Cleanup: %+v", left)
						}
					}
					proxy.run(t, 0, label, "set-image", name, target)
					check(t, c, name, dir.wantID)
				})
			}
		})
	}
}

var hexID = regexp.MustCompile(`(sha256:)?[0-9a-f]{64}`)

// shortCall shortens "POST /v1.41/containers/<64 hex>/rename" to
// "POST containers/id/rename" for a subtest name.
func shortCall(call, node string) string {
	call = hexID.ReplaceAllString(call, "id")
	call = strings.ReplaceAll(call, node, "node")
	method, path, _ := strings.Cut(call, " ")
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) > 1 && strings.HasPrefix(parts[0], "v1.") {
		parts = parts[1:]
	}
	return method + " " + strings.Join(parts, "/")
}
