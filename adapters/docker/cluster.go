package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/procedures"
)

// Labels nocobot reads or writes on containers and services.
const (
	// LabelURL on a node overrides the URL derived from its address,
	// e.g. "http://app-1.internal:13000". On a Swarm service, "{slot}" in
	// it is replaced by the task's slot number.
	LabelURL = "nocobot.url"
	// LabelPreviousImage and LabelPreviousDigest are set by SetImage on
	// the re-created node (or the service): what to go back to.
	LabelPreviousImage  = "nocobot.previous-image"
	LabelPreviousDigest = "nocobot.previous-digest"
	// LabelReplicas on a Swarm service remembers the cluster's size while
	// it is scaled down.
	LabelReplicas = "nocobot.replicas"

	// oldSuffix is appended to a node's name while SetImage re-creates it.
	oldSuffix = "-nocobot-old"
)

// Options configures a Cluster.
type Options struct {
	EngineOptions

	// Labels select the node containers (all must match), e.g.
	// {"com.docker.compose.project": "prod", "com.docker.compose.service": "app"}.
	Labels map[string]string
	// SwarmService, instead of Labels, names the Swarm service whose
	// replicas are the nodes.
	SwarmService string

	// Network picks the container address for a node's URL when it has
	// no nocobot.url label. Empty: the container's only network.
	Network string
	// Port is the NocoBase port on that address; default 13000.
	Port int

	// StopTimeout is how long a node gets to stop after SIGTERM before it
	// is killed; default 30s.
	StopTimeout time.Duration
	// StartTimeout bounds the wait until a started node's container is
	// running (Swarm: until its task runs); default 2m.
	StartTimeout time.Duration
	// StartParallelism is how many nodes StartRest starts at once;
	// default 1 (one at a time).
	StartParallelism int

	// PullPolicy is "always" (default: ask the registry every time) or
	// "missing" (use an image present on the engine as it is, for
	// air-gapped engines fed with docker load).
	PullPolicy string
	// Registry holds credentials for Pull.
	Registry RegistryAuth
}

// RegistryAuth holds registry credentials. With no Username, Pull reads
// the Docker config file (ConfigFile, else $DOCKER_CONFIG/config.json,
// else ~/.docker/config.json). The password never appears in String,
// JSON or logs.
type RegistryAuth struct {
	Username string
	Password string
	// ConfigFile overrides where the Docker config file is.
	ConfigFile string
}

// String hides the password.
func (r RegistryAuth) String() string {
	if r.Username == "" {
		return "RegistryAuth{config file}"
	}
	return "RegistryAuth{" + r.Username + ":[redacted]}"
}

// GoString hides the password from %#v too.
func (r RegistryAuth) GoString() string { return r.String() }

// MarshalJSON hides the password (zerolog and encoding/json use it).
func (r RegistryAuth) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"username": r.Username, "password": redacted(r.Password), "config_file": r.ConfigFile})
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Cluster is the app nodes of one NocoBase cluster on one engine. Its
// embedded Engine gives Exec, CopyFrom and CopyTo on any container.
type Cluster struct {
	*Engine
	opts Options
	log  zerolog.Logger
}

var _ procedures.Nodes = (*Cluster)(nil)

// New builds a Cluster. Exactly one of opts.Labels and opts.SwarmService
// must be set. It does not contact the engine.
func New(opts Options, log zerolog.Logger) (*Cluster, error) {
	if (len(opts.Labels) == 0) == (opts.SwarmService == "") {
		return nil, errors.New("docker: set either a label selector or a Swarm service name (and not both)")
	}
	if opts.Port == 0 {
		opts.Port = 13000
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 30 * time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.StartParallelism <= 0 {
		opts.StartParallelism = 1
	}
	switch opts.PullPolicy {
	case "":
		opts.PullPolicy = "always"
	case "always", "missing":
	default:
		return nil, fmt.Errorf("docker: pull policy %q: want always or missing", opts.PullPolicy)
	}
	e, err := NewEngine(opts.EngineOptions, log)
	if err != nil {
		return nil, err
	}
	l := log.With().Str("component", "docker").Logger()
	if opts.SwarmService != "" {
		l = l.With().Str("service", opts.SwarmService).Logger()
	}
	return &Cluster{Engine: e, opts: opts, log: l}, nil
}

func (c *Cluster) swarm() bool { return c.opts.SwarmService != "" }

// selector is the label filter of the cluster's containers.
func (c *Cluster) selector() client.Filters {
	f := client.Filters{}
	for k, v := range c.opts.Labels {
		f.Add("label", k+"="+v)
	}
	return f
}

// List returns the nodes, sorted by name.
func (c *Cluster) List(ctx context.Context) ([]procedures.Node, error) {
	if c.swarm() {
		return c.swarmList(ctx)
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	res, err := c.cli.ContainerList(cctx, client.ContainerListOptions{All: true, Filters: c.selector()})
	if err != nil {
		return nil, c.wrap("cluster", "list nodes", err)
	}
	digests := map[string]string{}
	var nodes []procedures.Node
	var errs []error
	for _, s := range res.Items {
		name := ""
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		if strings.HasSuffix(name, oldSuffix) {
			// A previous container kept by an unfinished SetImage: not a node.
			c.log.Warn().Str("container", name).Msg("left-over container from an interrupted image change; SetImage on its node cleans it up")
			continue
		}
		insp, err := c.cli.ContainerInspect(cctx, s.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // removed since the listing
		}
		if err != nil {
			errs = append(errs, c.wrap(name, "inspect", err))
			continue
		}
		nodes = append(nodes, c.node(cctx, insp.Container, digests))
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes, errors.Join(errs...)
}

// node describes one container.
func (c *Cluster) node(ctx context.Context, ci container.InspectResponse, digests map[string]string) procedures.Node {
	n := procedures.Node{Name: strings.TrimPrefix(ci.Name, "/"), ID: ci.ID}
	if ci.Config != nil {
		n.Image = ci.Config.Image
	}
	if ci.State != nil {
		n.State = string(ci.State.Status)
		if ci.State.Health != nil {
			n.Health = string(ci.State.Health.Status)
		}
	}
	d, ok := digests[ci.Image]
	if !ok {
		d = c.digest(ctx, ci.Image, n.Image)
		digests[ci.Image] = d
	}
	n.Digest = d
	n.URL = c.url(ci)
	return n
}

// digest returns the registry digest of the image a container runs
// ("sha256:…" from RepoDigests, matching the reference's repository when
// several match), or, for an image that never came from a registry, its
// local id (also "sha256:…", good for going back on this engine).
func (c *Cluster) digest(ctx context.Context, imageID, ref string) string {
	img, err := c.cli.ImageInspect(ctx, imageID)
	if err != nil {
		return imageID
	}
	repo := ref
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	first := ""
	for _, rd := range img.RepoDigests {
		name, dg, ok := strings.Cut(rd, "@")
		if !ok {
			continue
		}
		if first == "" {
			first = dg
		}
		if name == repo || strings.TrimPrefix(name, "docker.io/library/") == repo || strings.TrimPrefix(name, "docker.io/") == repo {
			return dg
		}
	}
	if first != "" {
		return first
	}
	return img.ID
}

// url is the node's NocoBase base URL: the nocobot.url label, else its
// address on the configured network (its IP while it runs; its name, which
// Docker's DNS resolves for peers on that network, while it is stopped).
func (c *Cluster) url(ci container.InspectResponse) string {
	if ci.Config != nil {
		if u := ci.Config.Labels[LabelURL]; u != "" {
			return strings.TrimRight(u, "/")
		}
	}
	port := strconv.Itoa(c.opts.Port)
	if ci.HostConfig != nil && ci.HostConfig.NetworkMode.IsHost() {
		return "http://" + net.JoinHostPort("127.0.0.1", port)
	}
	if ci.NetworkSettings == nil {
		return ""
	}
	nets := ci.NetworkSettings.Networks
	ep := nets[c.opts.Network]
	netName := c.opts.Network
	if ep == nil && c.opts.Network == "" && len(nets) == 1 {
		for k, v := range nets {
			netName, ep = k, v
		}
	}
	if ep == nil {
		return ""
	}
	if ep.IPAddress.IsValid() {
		return "http://" + net.JoinHostPort(ep.IPAddress.String(), port)
	}
	if netName == "bridge" || netName == "default" {
		return "" // no DNS for names on the default bridge
	}
	return "http://" + net.JoinHostPort(strings.TrimPrefix(ci.Name, "/"), port)
}

// inspectNode inspects a node by name and checks that it belongs to the
// cluster, so that a typo cannot stop some other container.
func (c *Cluster) inspectNode(ctx context.Context, name, action string) (container.InspectResponse, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	res, err := c.cli.ContainerInspect(cctx, name, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return container.InspectResponse{}, &Error{Node: name, Action: action, Reason: "no such container", Err: err}
		}
		return container.InspectResponse{}, c.wrap(name, action, err)
	}
	ci := res.Container
	if strings.TrimPrefix(ci.Name, "/") != name {
		// Inspect also matches ids and id prefixes; nodes are addressed by name.
		return container.InspectResponse{}, &Error{Node: name, Action: action, Reason: "no such container", Err: cerrdefs.ErrNotFound}
	}
	for k, v := range c.opts.Labels {
		if ci.Config == nil || ci.Config.Labels[k] != v {
			return container.InspectResponse{}, &Error{Node: name, Action: action,
				Reason: fmt.Sprintf("not a node of this cluster (label %s=%s missing)", k, v), Err: cerrdefs.ErrInvalidArgument}
		}
	}
	return ci, nil
}

func running(ci container.InspectResponse) bool {
	return ci.State != nil && (ci.State.Running || ci.State.Restarting)
}

// Stop stops a node: SIGTERM (or its stop signal), then SIGKILL after
// StopTimeout; it returns once the container is no longer running.
// Stopping a stopped node succeeds.
func (c *Cluster) Stop(ctx context.Context, name string) error {
	if c.swarm() {
		return c.swarmStop(ctx, name)
	}
	ci, err := c.inspectNode(ctx, name, "stop")
	if err != nil {
		return err
	}
	if !running(ci) {
		c.log.Debug().Str("node", name).Msg("already stopped")
		return nil
	}
	start := time.Now()
	secs := int((c.opts.StopTimeout + time.Second - 1) / time.Second)
	// The engine waits secs for a clean exit, then kills: give the call
	// that long plus the usual margin.
	sctx, cancel := context.WithTimeout(ctx, c.opts.StopTimeout+c.callTimeout)
	_, stopErr := c.cli.ContainerStop(sctx, ci.ID, client.ContainerStopOptions{Timeout: &secs})
	cancel()
	if stopErr != nil && !cerrdefs.IsNotModified(stopErr) {
		if ctx.Err() != nil {
			return c.wrap(name, "stop", ctx.Err())
		}
		c.log.Warn().Err(stopErr).Str("node", name).Msg("graceful stop failed; killing")
		kctx, kcancel := c.call(ctx)
		_, killErr := c.cli.ContainerKill(kctx, ci.ID, client.ContainerKillOptions{Signal: "KILL"})
		kcancel()
		if killErr != nil && !cerrdefs.IsConflict(killErr) { // conflict: not running any more
			return errors.Join(c.wrap(name, "stop", stopErr), c.wrap(name, "kill", killErr))
		}
	}
	if err := c.waitState(ctx, name, ci.ID, "stop", c.callTimeout, func(st *container.State) (bool, error) {
		return !st.Running && !st.Restarting, nil
	}); err != nil {
		return err
	}
	c.log.Info().Str("node", name).Dur("took", time.Since(start)).Msg("node stopped")
	return nil
}

// Start starts a node and returns when its container runs. Starting a
// running node succeeds. A container that exits at once is an error with
// the end of its log.
func (c *Cluster) Start(ctx context.Context, name string) error {
	if c.swarm() {
		return c.swarmStart(ctx, name)
	}
	ci, err := c.inspectNode(ctx, name, "start")
	if err != nil {
		return err
	}
	if ci.State != nil && ci.State.Running && !ci.State.Paused {
		c.log.Debug().Str("node", name).Msg("already running")
		return nil
	}
	cctx, cancel := c.call(ctx)
	if ci.State != nil && ci.State.Paused {
		_, err = c.cli.ContainerUnpause(cctx, ci.ID, client.ContainerUnpauseOptions{})
	} else {
		_, err = c.cli.ContainerStart(cctx, ci.ID, client.ContainerStartOptions{})
	}
	cancel()
	if err != nil && !cerrdefs.IsNotModified(err) {
		return c.wrap(name, "start", err)
	}
	if err := c.waitState(ctx, name, ci.ID, "start", c.opts.StartTimeout, func(st *container.State) (bool, error) {
		switch {
		case st.Running && !st.Restarting:
			return true, nil
		case st.Status == container.StateExited || st.Status == container.StateDead:
			return false, fmt.Errorf("container exited with code %d%s", st.ExitCode, c.logTail(ctx, ci.ID))
		}
		return false, nil
	}); err != nil {
		return err
	}
	c.log.Info().Str("node", name).Msg("node started")
	return nil
}

// waitState polls the container until done says so, or limit passes.
func (c *Cluster) waitState(ctx context.Context, name, id, action string, limit time.Duration, done func(*container.State) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		res, err := c.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return c.wrap(name, action, err)
		}
		if res.Container.State != nil {
			ok, err := done(res.Container.State)
			if err != nil {
				return &Error{Node: name, Action: action, Reason: err.Error(), Err: err}
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			st := ""
			if res.Container.State != nil {
				st = string(res.Container.State.Status)
			}
			return &Error{Node: name, Action: action, Reason: fmt.Sprintf("still %s after %s", st, limit), Err: ctx.Err()}
		case <-time.After(delay):
		}
		if delay < time.Second {
			delay *= 2
		}
	}
}

// logTail returns ": <last lines of the container's log>" for an error
// message, or "" if there is none.
func (c *Cluster) logTail(ctx context.Context, id string) string {
	ctx, cancel := c.call(ctx)
	defer cancel()
	rc, err := c.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var t tailBuffer
	t.max = 800
	if _, err := stdcopy.StdCopy(&t, &t, io.LimitReader(rc, 1<<20)); err != nil && t.String() == "" {
		return ""
	}
	s := strings.TrimSpace(t.String())
	if s == "" {
		return ""
	}
	return "; last log lines: " + strings.ReplaceAll(s, "\n", " | ")
}

// StopAll stops every node at once (stopping is safe in parallel, and
// the downtime is shortest that way).
func (c *Cluster) StopAll(ctx context.Context) error {
	if c.swarm() {
		return c.swarmScale(ctx, "stop all", func(cur, size int) int { return 0 })
	}
	nodes, err := c.List(ctx)
	if err != nil {
		return err
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return c.each(ctx, names, len(names), c.Stop)
}

// StartRest starts every node except the one named first (already started
// and verified), StartParallelism at a time — one at a time by default.
func (c *Cluster) StartRest(ctx context.Context, first string) error {
	if c.swarm() {
		return c.swarmScale(ctx, "start the rest", func(cur, size int) int { return size })
	}
	nodes, err := c.List(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, n := range nodes {
		if n.Name != first {
			names = append(names, n.Name)
		}
	}
	return c.each(ctx, names, c.opts.StartParallelism, c.Start)
}

// each runs fn on names, par at a time, in name order, and joins errors.
func (c *Cluster) each(ctx context.Context, names []string, par int, fn func(context.Context, string) error) error {
	if par < 1 {
		par = 1
	}
	sem := make(chan struct{}, par)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = c.wrap(name, "wait for a turn", ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
