package lb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// A stand-in NocoBase cluster for the traffic tests: each node is a real
// HTTP server on its own loopback port that refuses connections while
// stopped, answers 503 APP_COMMANDING while it starts or reloads a plugin,
// and 200 otherwise — what nginx sees of real nodes.

type nodeState int

const (
	stateStopped nodeState = iota
	stateStarting
	stateServing
	stateReloading
)

type standinNode struct {
	name, addr string

	mu      sync.Mutex
	state   nodeState
	image   string
	srv     *http.Server
	changed time.Time
}

type standinCluster struct {
	t       *testing.T
	boot    time.Duration // starting → serving
	reload  time.Duration // a plugin action's reload
	restore time.Duration
	nodes   []*standinNode

	mu       sync.Mutex
	backups  map[string]ports.BackupInfo
	problems []string
}

func newStandinCluster(t *testing.T, image string, names ...string) *standinCluster {
	c := &standinCluster{t: t, boot: 1500 * time.Millisecond, reload: 1500 * time.Millisecond, restore: 500 * time.Millisecond,
		backups: map[string]ports.BackupInfo{}}
	for _, n := range names {
		nd := &standinNode{name: n, addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), image: image}
		c.nodes = append(c.nodes, nd)
		if err := c.listen(nd); err != nil {
			t.Fatal(err)
		}
		nd.state = stateServing
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.mu.Lock()
			if n.srv != nil {
				_ = n.srv.Close()
			}
			n.mu.Unlock()
		}
	})
	return c
}

func (c *standinCluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

func versionOfImage(image string) string { return image[strings.LastIndex(image, ":")+1:] }

func (c *standinCluster) listen(n *standinNode) error {
	var l net.Listener
	var err error
	// The port was ours a moment ago; a closing socket may hold it briefly.
	for try := 0; try < 50; try++ {
		if l, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	n.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(n, w, r) })}
	go func() { _ = n.srv.Serve(l) }()
	return nil
}

func (c *standinCluster) serve(n *standinNode, w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	st, image := n.state, n.image
	n.mu.Unlock()
	if st == stateStarting || st == stateReloading {
		cmd := "start"
		if st == stateReloading {
			cmd = "pm.enable"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"error":{"status":503,"maintaining":true,"code":"APP_COMMANDING","message":"load plugin [ai], 50/77","command":{"name":%q}}}`, cmd)
		return
	}
	switch {
	case r.URL.Path == "/api/__health_check":
		io.WriteString(w, "ok")
	case r.URL.Path == "/api/app:getInfo":
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{"version": versionOfImage(image)}})
	case r.URL.Path == "/api/pm:list":
		// A read (the preflight's API key check): no reload.
		io.WriteString(w, `{"data":[]}`)
	case strings.HasPrefix(r.URL.Path, "/api/pm:"):
		n.mu.Lock()
		n.state = stateReloading
		n.mu.Unlock()
		time.AfterFunc(c.reload, func() {
			n.mu.Lock()
			if n.state == stateReloading {
				n.state = stateServing
			}
			n.mu.Unlock()
		})
		io.WriteString(w, `{"data":"ok"}`)
	default:
		io.WriteString(w, "hello from "+n.name)
	}
}

func (c *standinCluster) find(name string) (*standinNode, error) {
	for _, n := range c.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %s", name)
}

// List implements procedures.Nodes.
func (c *standinCluster) List(ctx context.Context) ([]ports.Node, error) {
	out := make([]ports.Node, len(c.nodes))
	for i, n := range c.nodes {
		n.mu.Lock()
		state := "exited"
		if n.state != stateStopped {
			state = "running"
		}
		out[i] = ports.Node{Name: n.name, ID: n.name, Image: n.image, State: state, URL: "http://" + n.addr}
		n.mu.Unlock()
	}
	return out, nil
}

// Stop implements procedures.Nodes.
func (c *standinCluster) Stop(ctx context.Context, name string) error {
	n, err := c.find(name)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stateStopped {
		return nil
	}
	_ = n.srv.Close()
	n.srv, n.state = nil, stateStopped
	return nil
}

// Start implements procedures.Nodes.
func (c *standinCluster) Start(ctx context.Context, name string) error {
	n, err := c.find(name)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateStopped {
		return nil
	}
	if err := c.listen(n); err != nil {
		return err
	}
	n.state = stateStarting
	srv := n.srv
	time.AfterFunc(c.boot, func() {
		n.mu.Lock()
		if n.srv == srv && n.state == stateStarting {
			n.state = stateServing
		}
		n.mu.Unlock()
	})
	return nil
}

// SetImage implements procedures.Nodes.
func (c *standinCluster) SetImage(ctx context.Context, name, image string) error {
	n, err := c.find(name)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateStopped {
		return fmt.Errorf("%s is running", name)
	}
	n.image = image
	return nil
}

// Pull implements procedures.Nodes.
func (c *standinCluster) Pull(ctx context.Context, image string, progress ports.Progress) error {
	return nil
}

// Resolve implements procedures.Nodes: a stand-in image is its own id.
func (c *standinCluster) Resolve(ctx context.Context, image string) (ports.ImageInfo, error) {
	return ports.ImageInfo{Ref: image, ID: image, Digest: image, Pinned: image}, nil
}

// Cleanup implements procedures.Nodes: stand-ins have no image changes to settle.
func (c *standinCluster) Cleanup(ctx context.Context) ([]string, error) { return nil, nil }

// backupsOf is the cluster seen as procedures.Backups (its List lists backups).
type backupsOf struct{ c *standinCluster }

func (b backupsOf) Check(ctx context.Context) error { return nil }

func (b backupsOf) Create(ctx context.Context, req ports.BackupRequest, progress ports.Progress) (ports.BackupInfo, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	info := ports.BackupInfo{ID: fmt.Sprintf("b%d", len(b.c.backups)+1), Cluster: req.Cluster, Version: req.Version,
		Created: time.Now(), Size: 1, Verified: true, RunID: req.RunID}
	b.c.backups[info.ID] = info
	return info, nil
}

func (b backupsOf) Verify(ctx context.Context, id string) (ports.BackupInfo, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	info, ok := b.c.backups[id]
	if !ok {
		return info, errors.New("no backup " + id)
	}
	return info, nil
}

func (b backupsOf) Restore(ctx context.Context, id string, progress ports.Progress) error {
	nodes, _ := b.c.List(ctx)
	for _, n := range nodes {
		if n.Running() {
			b.c.mu.Lock()
			b.c.problems = append(b.c.problems, "restore while "+n.Name+" runs")
			b.c.mu.Unlock()
		}
	}
	select {
	case <-time.After(b.c.restore):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (b backupsOf) List(ctx context.Context) ([]ports.BackupInfo, error) { return nil, nil }

func (b backupsOf) PlanKind(ctx context.Context, nodesStopped bool) (kind, reason string) {
	return ports.BackupDump, "stand-in"
}

func (b backupsOf) Export(ctx context.Context, id string, progress ports.Progress) (ports.BackupInfo, error) {
	return b.Verify(ctx, id)
}
