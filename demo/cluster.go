package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// timing is how long the simulated cluster takes for each thing: a real
// cluster's proportions (docs/nocobase.md: a start takes 15–45 s, a plugin
// enable about 8 s), shrunk so the whole demo lasts about a minute.
type timing struct {
	stop, containerStart, refused, boot, migrate, plugin, pull, backup, restore, lb time.Duration
}

var realistic = timing{
	stop: 400 * time.Millisecond, containerStart: 200 * time.Millisecond,
	refused: 500 * time.Millisecond, boot: 1800 * time.Millisecond, migrate: 1500 * time.Millisecond,
	plugin: 1500 * time.Millisecond, pull: 1200 * time.Millisecond, backup: 1500 * time.Millisecond,
	restore: 1200 * time.Millisecond, lb: 100 * time.Millisecond,
}

// simNode is one simulated NocoBase container.
type simNode struct {
	name, image string
	id          int
	running     bool
	started     time.Time
	// migrates is set when the node started on a version the database was
	// not at: it runs the upgrade migrations while it boots.
	migrates bool
	// busyUntil and busyWith: a plugin action makes the node answer 503
	// APP_COMMANDING with that command for a while.
	busyUntil time.Time
	busyWith  string
}

// Cluster is a simulated NocoBase cluster in this process: three app
// nodes, a database, a storage folder, a load balancer and a backup
// destination, with the delays and health answers of a real one. It
// implements procedures.Nodes, App and Balancer (and Backups through
// Backups()), and notes every broken safety rule.
type Cluster struct {
	t timing

	mu         sync.Mutex
	nodes      []*simNode
	nextID     int
	dbVersion  string
	lb         ports.LBMode
	plugins    map[string]bool
	backups    []ports.BackupInfo
	backupDB   map[string]string // backup id → database version in it
	violations []string
}

const imageRepo = "nocobase/nocobase"

// newCluster makes a running cluster of nodes named names on version.
func newCluster(t timing, version string, names ...string) *Cluster {
	c := &Cluster{t: t, dbVersion: version, lb: ports.LBNormal, plugins: map[string]bool{}, backupDB: map[string]string{}}
	for _, n := range names {
		c.nextID++
		c.nodes = append(c.nodes, &simNode{name: n, image: imageRepo + ":" + version, id: c.nextID, running: true, started: time.Now().Add(-time.Hour)})
	}
	return c
}

func versionOf(image string) string {
	_, tag, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	return tag
}

func (c *Cluster) find(name string) (*simNode, error) {
	for _, n := range c.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no container named %s", name)
}

func (c *Cluster) violate(format string, a ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, a...))
}

// Violations lists the safety rules broken so far (none when nocobot works).
func (c *Cluster) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// State is one line about the cluster, e.g. "3/3 nodes running 2.2.16, database at 2.2.16, traffic normal".
func (c *Cluster) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	running := 0
	versions := map[string]bool{}
	for _, n := range c.nodes {
		if n.running {
			running++
		}
		versions[versionOf(n.image)] = true
	}
	var vs []string
	for v := range versions {
		vs = append(vs, v)
	}
	return fmt.Sprintf("%d/%d nodes running %s, database at %s, traffic %s", running, len(c.nodes), strings.Join(vs, "+"), c.dbVersion, c.lb)
}

// settled reports whether every node runs healthy on version, the
// database is at it, and traffic goes to the nodes.
func (c *Cluster) settled(version string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if versionOf(n.image) != version || !c.status(n, time.Now()).Healthy {
			return false
		}
	}
	return c.dbVersion == version && c.lb == ports.LBNormal
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// List implements procedures.Nodes.
func (c *Cluster) List(ctx context.Context) ([]ports.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ports.Node, len(c.nodes))
	for i, n := range c.nodes {
		state := "exited"
		if n.running {
			state = "running"
		}
		out[i] = ports.Node{Name: n.name, ID: fmt.Sprintf("%012x", 0xc0ffee000000+n.id), Image: n.image,
			Digest: digestOf(n.image), State: state, URL: "http://" + n.name + ":13000"}
	}
	return out, nil
}

// digestOf is the simulated registry's digest of an image: one per
// reference.
func digestOf(image string) string {
	sum := sha256.Sum256([]byte(image))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Resolve implements procedures.Nodes: the simulated registry's images
// carry no version label, so the version is known once a node runs them.
func (c *Cluster) Resolve(ctx context.Context, image string) (ports.ImageInfo, error) {
	if err := ctx.Err(); err != nil {
		return ports.ImageInfo{}, err
	}
	d := digestOf(image)
	return ports.ImageInfo{Ref: image, ID: d, Digest: d, Pinned: image}, nil
}

// Cleanup implements procedures.Nodes: a simulated image change is never
// left half done.
func (c *Cluster) Cleanup(ctx context.Context) ([]string, error) { return nil, ctx.Err() }

// Stop implements procedures.Nodes: SIGTERM, and the node is gone.
func (c *Cluster) Stop(ctx context.Context, name string) error {
	c.mu.Lock()
	n, err := c.find(name)
	running := err == nil && n.running
	c.mu.Unlock()
	if err != nil || !running {
		return err
	}
	if err := sleep(ctx, c.t.stop); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n.running = false
	n.migrates = false
	return nil
}

// Start implements procedures.Nodes. Like every NocoBase start, it
// migrates the database when the image's version is not the database's.
func (c *Cluster) Start(ctx context.Context, name string) error {
	if err := sleep(ctx, c.t.containerStart); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.find(name)
	if err != nil || n.running {
		return err
	}
	if versionOf(n.image) != c.dbVersion {
		for _, o := range c.nodes {
			if o.running && o.migrates {
				c.violate("%s started on %s while %s was still migrating the database", n.name, n.image, o.name)
			}
		}
		n.migrates = true
	}
	n.running, n.started = true, time.Now()
	return nil
}

// SetImage implements procedures.Nodes: the container is re-created on
// the new image (a new id) and stays stopped.
func (c *Cluster) SetImage(ctx context.Context, name, image string) error {
	if err := sleep(ctx, c.t.containerStart); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.find(name)
	if err != nil {
		return err
	}
	if n.running {
		c.violate("image of %s changed while it ran", name)
	}
	c.nextID++
	n.image, n.id = image, c.nextID
	return nil
}

// Pull implements procedures.Nodes.
func (c *Cluster) Pull(ctx context.Context, image string, progress ports.Progress) error {
	if !strings.HasPrefix(image, imageRepo+":") {
		return fmt.Errorf("pull access denied for %s", image)
	}
	const layers = 6
	for i := 1; i <= layers; i++ {
		progress(fmt.Sprintf("pulling %s: layer %d/%d", image, i, layers))
		if err := sleep(ctx, c.t.pull/layers); err != nil {
			return err
		}
	}
	return nil
}

// status is what the node's /api/__health_check would answer now.
func (c *Cluster) status(n *simNode, now time.Time) ports.AppStatus {
	if !n.running {
		return ports.AppStatus{}
	}
	up := now.Sub(n.started)
	if up < c.t.refused {
		return ports.AppStatus{} // not listening yet: connection refused
	}
	commanding := func(cmd, msg string) ports.AppStatus {
		return ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_COMMANDING", Command: cmd, Message: msg}
	}
	up -= c.t.refused
	if n.migrates {
		if up < c.t.migrate {
			const steps = 18
			return commanding("upgrade", fmt.Sprintf("run migration %d/%d", 1+int(up*steps/c.t.migrate), steps))
		}
		up -= c.t.migrate
	}
	if up < c.t.boot {
		const plugins = 77
		return commanding("start", fmt.Sprintf("load plugin [%s], %d/%d", pluginNames[int(up*10/c.t.boot)%len(pluginNames)], 1+int(up*plugins/c.t.boot), plugins))
	}
	if left := n.busyUntil.Sub(now); left > 0 {
		if left > c.t.plugin/2 {
			return commanding(n.busyWith, "syncing database in "+strings.TrimPrefix(n.busyWith, "pm.")+" plugin")
		}
		const plugins = 78
		return commanding(n.busyWith, fmt.Sprintf("reload: load plugin [%s], %d/%d", pluginNames[int(left*10/c.t.plugin)%len(pluginNames)], plugins-int(left*2*plugins/c.t.plugin), plugins))
	}
	return ports.AppStatus{Healthy: true, Listening: true, HTTPStatus: 200}
}

var pluginNames = []string{"users", "acl", "file-manager", "workflow", "data-source-main", "ui-schema-storage", "auth", "ai", "backups", "localization"}

func describe(name string, s ports.AppStatus) string {
	switch {
	case s.Healthy:
		return name + ": 200 ok"
	case !s.Listening:
		return name + ": connection refused (starting)"
	}
	return fmt.Sprintf("%s: %d %s %s — %s", name, s.HTTPStatus, s.Code, s.Command, s.Message)
}

// WaitHealthy implements procedures.App: it polls the simulated health
// check and reports each change, as the real adapter does.
func (c *Cluster) WaitHealthy(ctx context.Context, node ports.Node, progress ports.Progress) error {
	last := ""
	for {
		c.mu.Lock()
		n, err := c.find(node.Name)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		if !n.running {
			c.mu.Unlock()
			return fmt.Errorf("%s is not running", node.Name)
		}
		s := c.status(n, time.Now())
		if s.Healthy && n.migrates {
			c.dbVersion, n.migrates = versionOf(n.image), false
		}
		c.mu.Unlock()
		if msg := describe(node.Name, s); msg != last {
			progress(msg)
			last = msg
		}
		if s.Healthy {
			return nil
		}
		if err := sleep(ctx, 150*time.Millisecond); err != nil {
			return fmt.Errorf("%s not healthy in time: %s", node.Name, last)
		}
	}
}

// Probe implements procedures.App: one look at a node's health check.
func (c *Cluster) Probe(ctx context.Context, baseURL string) (ports.AppStatus, error) {
	if err := ctx.Err(); err != nil {
		return ports.AppStatus{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if baseURL == "http://"+n.name+":13000" {
			if !n.running {
				return ports.AppStatus{Message: "connection refused"}, nil
			}
			return c.status(n, time.Now()), nil
		}
	}
	return ports.AppStatus{}, fmt.Errorf("no node at %s", baseURL)
}

// CheckKey implements procedures.App: the simulated nodes accept the
// demo's API key once they run.
func (c *Cluster) CheckKey(ctx context.Context, node ports.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.find(node.Name)
	if err != nil {
		return err
	}
	if !n.running {
		return fmt.Errorf("%s is not running", node.Name)
	}
	return ctx.Err()
}

// Version implements procedures.App (GET /api/app:getInfo).
func (c *Cluster) Version(ctx context.Context, node ports.Node) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.find(node.Name)
	if err != nil {
		return "", err
	}
	if s := c.status(n, time.Now()); !s.Healthy {
		return "", errors.New(describe(n.name, s))
	}
	return versionOf(n.image), nil
}

// Plugin implements procedures.App: pm:<action> answers at once, then
// the node reloads (503 APP_COMMANDING pm.<action>) until it is healthy.
func (c *Cluster) Plugin(ctx context.Context, node ports.Node, action, pkg string, progress ports.Progress) error {
	c.mu.Lock()
	n, err := c.find(node.Name)
	if err == nil {
		n.busyUntil, n.busyWith = time.Now().Add(c.t.plugin), "pm."+action
		c.plugins[pkg] = action != "disable"
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	progress(fmt.Sprintf("POST /api/pm:%s?filterByTk=%s → 200", action, pkg))
	return c.WaitHealthy(ctx, node, progress)
}

// SetMode implements procedures.Balancer: the flag file, then a probe.
func (c *Cluster) SetMode(ctx context.Context, mode ports.LBMode) error {
	if err := sleep(ctx, c.t.lb); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The load balancer skips nodes that cannot serve (deploy/nginx), so
	// traffic may go back while some start; with none healthy users would
	// see errors instead of the maintenance page.
	if mode == ports.LBNormal {
		var down []string
		for _, n := range c.nodes {
			s := c.status(n, time.Now())
			if s.Healthy {
				down = nil
				break
			}
			down = append(down, describe(n.name, s))
		}
		if len(down) > 0 {
			c.violate("traffic sent back while no node can serve: %s", strings.Join(down, "; "))
		}
	}
	c.lb = mode
	return nil
}

// Mode implements procedures.Balancer.
func (c *Cluster) Mode(ctx context.Context) (ports.LBMode, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lb, ctx.Err()
}

// Backups returns the cluster's backups as procedures.Backups (its List
// lists backups, where the Cluster's own List lists nodes).
func (c *Cluster) Backups() ports.Backups { return backups{c} }
