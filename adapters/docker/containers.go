package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// Containers is a cluster whose nodes are plain containers selected by
// labels (a compose project's app service, say). Stop and Start act on one
// container; SetImage re-creates it (reimage.go).
type Containers struct {
	base
}

var _ ports.Nodes = (*Containers)(nil)

// NewContainers builds the node set of opts.Labels. It does not contact
// the engine.
func NewContainers(opts Options, log zerolog.Logger) (*Containers, error) {
	if len(opts.Labels) == 0 {
		return nil, errors.New("docker: containers: no label selector")
	}
	b, err := newBase(opts, log)
	if err != nil {
		return nil, err
	}
	return &Containers{base: b}, nil
}

// selector is the label filter of the cluster's containers.
func (c *Containers) selector() client.Filters {
	f := client.Filters{}
	for k, v := range c.opts.Labels {
		f.Add("label", k+"="+v)
	}
	return f
}

// List returns the nodes, sorted by name. A node whose container is
// missing but whose <name>-nocobot-old container (left by an image change
// that was interrupted) exists is listed under its own name, as that
// container is: stopped, on its old image. Every operation on such a node
// recovers it first.
func (c *Containers) List(ctx context.Context) ([]ports.Node, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	res, err := c.cli.ContainerList(cctx, client.ContainerListOptions{All: true, Filters: c.selector()})
	if err != nil {
		return nil, c.wrap("cluster", "list nodes", err)
	}
	names := map[string]bool{}
	for _, s := range res.Items {
		names[containerName(s.Names)] = true
	}
	digests := map[string]string{}
	var nodes []ports.Node
	var errs []error
	for _, s := range res.Items {
		name := containerName(s.Names)
		if node, ok := strings.CutSuffix(name, oldSuffix); ok {
			if names[node] {
				continue // the new container is there; the leftover is not a node
			}
			c.log.Warn().Str("node", node).Str("container", name).Msg("node is only its left-over container from an interrupted image change; listing it as the node")
		}
		insp, err := c.cli.ContainerInspect(cctx, s.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // removed since the listing
		}
		if err != nil {
			errs = append(errs, c.wrap(name, "inspect", err))
			continue
		}
		n := c.node(cctx, insp.Container, digests)
		n.Name = strings.TrimSuffix(n.Name, oldSuffix)
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes, errors.Join(errs...)
}

func containerName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.TrimPrefix(names[0], "/")
}

// node describes one container.
func (c *Containers) node(ctx context.Context, ci container.InspectResponse, digests map[string]string) ports.Node {
	n := ports.Node{Name: strings.TrimPrefix(ci.Name, "/"), ID: ci.ID}
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

// url is the node's NocoBase base URL: the nocobot.url label, else its
// address on the configured network (its IP while it runs; its name, which
// Docker's DNS resolves for peers on that network, while it is stopped).
func (c *Containers) url(ci container.InspectResponse) string {
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

// inspectNode inspects a node's container by name and checks that it
// belongs to the cluster, so that a typo cannot stop some other container.
func (c *Containers) inspectNode(ctx context.Context, name, action string) (container.InspectResponse, error) {
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

// lookup returns what exists of a node: its container and the leftover
// of an interrupted image change, either possibly missing (ok false).
func (c *Containers) lookup(ctx context.Context, name, action string) (cur, old container.InspectResponse, haveCur, haveOld bool, err error) {
	cur, err = c.inspectNode(ctx, name, action)
	haveCur = err == nil
	if err != nil && !cerrdefs.IsNotFound(err) {
		return cur, old, false, false, err
	}
	old, err = c.inspectNode(ctx, name+oldSuffix, action)
	haveOld = err == nil
	if err != nil && !cerrdefs.IsNotFound(err) {
		return cur, old, haveCur, false, err
	}
	if !haveCur && !haveOld {
		return cur, old, false, false, &Error{Node: name, Action: action, Reason: "no such container", Err: cerrdefs.ErrNotFound}
	}
	return cur, old, haveCur, haveOld, nil
}

// find returns the container that is the node: its own, or, when only
// the leftover of an interrupted image change is there, that one renamed
// back to the node's name (it is the node as it was before the change).
// A leftover next to the node's container is left for SetImage or
// Cleanup to settle.
func (c *Containers) find(ctx context.Context, name, action string) (container.InspectResponse, error) {
	cur, old, haveCur, _, err := c.lookup(ctx, name, action)
	if err != nil || haveCur {
		return cur, err
	}
	if err := c.rename(ctx, old.ID, name, action+": put back "+name+oldSuffix); err != nil {
		return cur, err
	}
	c.log.Warn().Str("node", name).Msg("node restored from the left-over container of an interrupted image change")
	return c.inspectNode(ctx, name, action)
}

func (c *Containers) rename(ctx context.Context, id, to, action string) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	if _, err := c.cli.ContainerRename(cctx, id, client.ContainerRenameOptions{NewName: to}); err != nil {
		return c.wrap(strings.TrimSuffix(to, oldSuffix), action, err)
	}
	return nil
}

func running(ci container.InspectResponse) bool {
	return ci.State != nil && (ci.State.Running || ci.State.Restarting)
}

// Stop stops a node: SIGTERM (or its stop signal), then SIGKILL after
// StopTimeout; it returns once the container is no longer running.
// Before that it holds the node's restart policy at "no", so that a
// restart of the Docker daemon cannot start what nocobot stopped; Start
// gives the policy back. Stopping a stopped node succeeds (and holds its
// policy too).
func (c *Containers) Stop(ctx context.Context, name string) error {
	ci, err := c.find(ctx, name, "stop")
	if err != nil {
		return err
	}
	if err := c.holdRestart(ctx, name, &ci); err != nil {
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

// Start starts a node and returns when its container runs, with the
// node's own restart policy back in place (Stop held it at "no"). The
// policy comes back only once the container runs, so that nothing but
// this call starts the node. Starting a running node succeeds. A container
// that exits at once is an error with the end of its log.
func (c *Containers) Start(ctx context.Context, name string) error {
	cur, _, haveCur, haveOld, err := c.lookup(ctx, name, "start")
	if err != nil {
		return err
	}
	if haveCur && haveOld && !running(cur) {
		// An interrupted image change: its new container may be half made.
		if err := c.SetImage(ctx, name, cur.Config.Image); err != nil {
			return err
		}
	}
	ci, err := c.find(ctx, name, "start")
	if err != nil {
		return err
	}
	if ci.State != nil && ci.State.Running && !ci.State.Paused {
		c.log.Debug().Str("node", name).Msg("already running")
		return c.releaseRestart(ctx, name, ci.ID)
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
	if err := c.releaseRestart(ctx, name, ci.ID); err != nil {
		return err
	}
	c.log.Info().Str("node", name).Msg("node started")
	return nil
}

// waitState polls the container until done says so, or limit passes.
func (c *Containers) waitState(ctx context.Context, name, id, action string, limit time.Duration, done func(*container.State) (bool, error)) error {
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
func (c *Containers) logTail(ctx context.Context, id string) string {
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
func (c *Containers) StopAll(ctx context.Context) error {
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
func (c *Containers) StartRest(ctx context.Context, first string) error {
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
