package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// Swarm is a cluster whose nodes are the tasks of one replicated Swarm
// service. Swarm treats the tasks as interchangeable and, scaling down,
// removes the ones of its own choosing, so a node here is a position, not
// a Swarm slot: "<service>.1" is the running task with the lowest slot
// number, "<service>.2" the next, and so on; then the tasks still starting,
// then the stopped positions up to the cluster's size. So the first node
// always runs when any does, and the node operations become scaling:
//
//	Stop("svc.k")  → scale to k-1 (if more run), so positions ≥ k stop
//	Start("svc.k") → scale to k (if fewer run)
//	StopAll        → scale to 0
//	StartRest      → scale to the cluster's size
//	SetImage       → service update with the new image, only at 0 replicas
//	                 (no rolling update across versions)
//
// The cluster's size is remembered in the service label nocobot.replicas
// when it is first scaled down. Each scaling waits until the tasks have
// converged, logging every task's state as it changes. A node's URL is its
// task's (the nocobot.url label with {slot} replaced by the task's slot,
// or its address).
type Swarm struct {
	base
	// imageMu makes concurrent SetImage calls (the nodes changed
	// together) one service update: the first makes it, the others find
	// it done, instead of racing on the service's version.
	imageMu sync.Mutex
}

var _ ports.Nodes = (*Swarm)(nil)

// NewSwarm builds the node set of the Swarm service opts.SwarmService. It
// does not contact the engine.
func NewSwarm(opts Options, log zerolog.Logger) (*Swarm, error) {
	if opts.SwarmService == "" {
		return nil, errors.New("docker: swarm: no service name")
	}
	b, err := newBase(opts, log)
	if err != nil {
		return nil, err
	}
	return &Swarm{base: b}, nil
}

func (c *Swarm) service(ctx context.Context, action string) (swarm.Service, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	res, err := c.cli.ServiceInspect(cctx, c.opts.SwarmService, client.ServiceInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return swarm.Service{}, &Error{Node: c.opts.SwarmService, Action: action, Reason: "no such Swarm service", Err: err}
		}
		return swarm.Service{}, c.wrap(c.opts.SwarmService, action, err)
	}
	if res.Service.Spec.Mode.Replicated == nil {
		return swarm.Service{}, &Error{Node: c.opts.SwarmService, Action: action, Reason: "not a replicated service", Err: cerrdefs.ErrInvalidArgument}
	}
	return res.Service, nil
}

func replicas(s swarm.Service) int {
	if r := s.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		return int(*r.Replicas)
	}
	return 0
}

// size is the cluster's full number of nodes.
func size(s swarm.Service) int {
	n := replicas(s)
	if v, err := strconv.Atoi(s.Spec.Labels[LabelReplicas]); err == nil && v > n {
		n = v
	}
	return n
}

// position is k of a node name "<service>.k".
func (c *Swarm) position(name, action string) (int, error) {
	prefix := c.opts.SwarmService + "."
	k, err := strconv.Atoi(strings.TrimPrefix(name, prefix))
	if !strings.HasPrefix(name, prefix) || err != nil || k < 1 {
		return 0, &Error{Node: name, Action: action, Reason: fmt.Sprintf("not a node of service %s (want %s<n>)", c.opts.SwarmService, prefix), Err: cerrdefs.ErrInvalidArgument}
	}
	return k, nil
}

func (c *Swarm) tasks(ctx context.Context, svcID string) ([]swarm.Task, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	f := client.Filters{}
	f.Add("service", svcID)
	res, err := c.cli.TaskList(cctx, client.TaskListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	return res.Items, nil
}

// slotTasks picks, for each slot, the task that speaks for it: the newest
// one Swarm wants running, else the newest one.
func slotTasks(tasks []swarm.Task) map[int]swarm.Task {
	out := map[int]swarm.Task{}
	for _, t := range tasks {
		cur, ok := out[t.Slot]
		better := !ok ||
			(t.DesiredState == swarm.TaskStateRunning) && (cur.DesiredState != swarm.TaskStateRunning || t.Meta.CreatedAt.After(cur.Meta.CreatedAt)) ||
			(t.DesiredState != swarm.TaskStateRunning && cur.DesiredState != swarm.TaskStateRunning && t.Meta.CreatedAt.After(cur.Meta.CreatedAt))
		if better {
			out[t.Slot] = t
		}
	}
	return out
}

// positions orders the tasks that hold the nodes' positions: the running
// ones by slot number, then those Swarm still wants running (starting,
// or failed and about to be replaced) by slot number. Tasks Swarm shut
// down hold no position.
func positions(tasks []swarm.Task) []swarm.Task {
	var run, wanted []swarm.Task
	for _, t := range slotTasks(tasks) {
		switch {
		case t.DesiredState == swarm.TaskStateRunning && t.Status.State == swarm.TaskStateRunning:
			run = append(run, t)
		case t.DesiredState == swarm.TaskStateRunning:
			wanted = append(wanted, t)
		}
	}
	bySlot := func(s []swarm.Task) {
		sort.Slice(s, func(i, j int) bool { return s[i].Slot < s[j].Slot })
	}
	bySlot(run)
	bySlot(wanted)
	return append(run, wanted...)
}

// List returns the nodes in position order (numerically: svc.2 before
// svc.10); the first one runs whenever any does.
func (c *Swarm) List(ctx context.Context) ([]ports.Node, error) {
	svc, err := c.service(ctx, "list nodes")
	if err != nil {
		return nil, err
	}
	tasks, err := c.tasks(ctx, svc.ID)
	if err != nil {
		return nil, c.wrap(c.opts.SwarmService, "list tasks", err)
	}
	held := positions(tasks)
	image, digest := splitDigest(svc.Spec.TaskTemplate.ContainerSpec.Image)
	n := max(size(svc), len(held))
	nodes := make([]ports.Node, 0, n)
	for i := range n {
		node := ports.Node{Name: fmt.Sprintf("%s.%d", svc.Spec.Name, i+1), Image: image, Digest: digest, State: "exited"}
		if i < len(held) {
			t := held[i]
			node.State = string(t.Status.State)
			if t.Status.ContainerStatus != nil {
				node.ID = t.Status.ContainerStatus.ContainerID
			}
			node.URL = c.taskURL(svc, t)
		}
		if node.URL == "" {
			node.URL = c.slotURL(svc, i+1)
		}
		nodes = append(nodes, node)
	}
	return nodes, nil
}

// splitDigest splits "repo:tag@sha256:…" (Swarm pins digests this way).
func splitDigest(ref string) (image, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

func (c *Swarm) slotURL(svc swarm.Service, slot int) string {
	u := svc.Spec.Labels[LabelURL]
	if u == "" && svc.Spec.TaskTemplate.ContainerSpec != nil {
		u = svc.Spec.TaskTemplate.ContainerSpec.Labels[LabelURL]
	}
	return strings.TrimRight(strings.ReplaceAll(u, "{slot}", strconv.Itoa(slot)), "/")
}

func (c *Swarm) taskURL(svc swarm.Service, t swarm.Task) string {
	if u := c.slotURL(svc, t.Slot); u != "" {
		return u
	}
	for _, a := range t.NetworksAttachments {
		if c.opts.Network != "" && a.Network.Spec.Name != c.opts.Network {
			continue
		}
		if a.Network.Spec.Name == "ingress" && c.opts.Network == "" {
			continue
		}
		for _, addr := range a.Addresses {
			return "http://" + net.JoinHostPort(addr.Addr().String(), strconv.Itoa(c.opts.Port))
		}
	}
	return ""
}

// Stop stops the node at position k and any after it: the service is
// scaled down to k-1 tasks (if more run).
func (c *Swarm) Stop(ctx context.Context, name string) error {
	k, err := c.position(name, "stop")
	if err != nil {
		return err
	}
	return c.scale(ctx, "stop "+name, func(cur, size int) int { return min(cur, k-1) })
}

// Start starts the node at position k (and any before it): the service
// is scaled up to k tasks (if fewer run).
func (c *Swarm) Start(ctx context.Context, name string) error {
	k, err := c.position(name, "start")
	if err != nil {
		return err
	}
	return c.scale(ctx, "start "+name, func(cur, size int) int {
		if k > size {
			return -1
		}
		return max(cur, k)
	})
}

// StopAll scales the service to 0.
func (c *Swarm) StopAll(ctx context.Context) error {
	return c.scale(ctx, "stop all", func(cur, size int) int { return 0 })
}

// StartRest scales the service back to the cluster's size; first is
// running already.
func (c *Swarm) StartRest(ctx context.Context, first string) error {
	return c.scale(ctx, "start the rest", func(cur, size int) int { return size })
}

// Leftovers reports none: a service's image changes in one update.
func (c *Swarm) Leftovers(ctx context.Context) ([]Leftover, error) { return nil, nil }

// Cleanup has nothing to settle in Swarm mode.
func (c *Swarm) Cleanup(ctx context.Context) ([]string, error) { return nil, nil }

// scale sets the replica count to target(current, size) and waits
// for the tasks to converge. A negative target is an unknown slot.
func (c *Swarm) scale(ctx context.Context, action string, target func(cur, size int) int) error {
	svc, err := c.service(ctx, action)
	if err != nil {
		return err
	}
	cur, total := replicas(svc), size(svc)
	want := target(cur, total)
	if want < 0 {
		return &Error{Node: c.opts.SwarmService, Action: action, Reason: fmt.Sprintf("the service has %d slots", total), Err: cerrdefs.ErrNotFound}
	}
	if want != cur {
		spec := svc.Spec
		r := uint64(want)
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &r}
		spec.Labels = cloneLabels(spec.Labels)
		spec.Labels[LabelReplicas] = strconv.Itoa(max(total, want))
		cctx, cancel := c.call(ctx)
		res, err := c.cli.ServiceUpdate(cctx, svc.ID, client.ServiceUpdateOptions{Version: svc.Version, Spec: spec})
		cancel()
		if err != nil {
			return c.wrap(c.opts.SwarmService, fmt.Sprintf("%s: scale %d → %d", action, cur, want), err)
		}
		for _, w := range res.Warnings {
			c.log.Warn().Msg("service update: " + w)
		}
		c.log.Info().Int("from", cur).Int("to", want).Str("action", action).Msg("service scaled")
	}
	limit := c.opts.StartTimeout
	if want < cur {
		limit = c.opts.StopTimeout + c.callTimeout
	}
	return c.converge(ctx, svc.ID, want, action, limit)
}

func cloneLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// converge waits until exactly want tasks run and no
// other task is still running, logging task states as they change.
func (c *Swarm) converge(ctx context.Context, svcID string, want int, action string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	seen := map[string]swarm.TaskState{}
	delay := 100 * time.Millisecond
	for {
		tasks, err := c.tasks(ctx, svcID)
		if err != nil {
			return c.wrap(c.opts.SwarmService, action+": list tasks", err)
		}
		runningWanted, runningOther := 0, 0
		var failed []string
		for _, t := range tasks {
			if seen[t.ID] != t.Status.State {
				seen[t.ID] = t.Status.State
				ev := c.log.Info().Str("task", t.ID).Int("slot", t.Slot).Str("state", string(t.Status.State)).Str("desired", string(t.DesiredState))
				if t.Status.Err != "" {
					ev = ev.Str("error", t.Status.Err)
				}
				ev.Msg("task")
			}
			isRunning := t.Status.State == swarm.TaskStateRunning
			switch {
			case t.DesiredState == swarm.TaskStateRunning && isRunning:
				runningWanted++
			case isRunning:
				runningOther++
			}
			if t.DesiredState == swarm.TaskStateRunning && (t.Status.State == swarm.TaskStateFailed || t.Status.State == swarm.TaskStateRejected) {
				failed = append(failed, fmt.Sprintf("%s.%d %s: %s", c.opts.SwarmService, t.Slot, t.Status.State, t.Status.Err))
			}
		}
		if runningWanted == want && runningOther == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("%d of %d tasks running (%d still stopping) after %s", runningWanted, want, runningOther, limit)
			if len(failed) > 0 {
				msg += "; " + strings.Join(failed, "; ")
			}
			return &Error{Node: c.opts.SwarmService, Action: action, Reason: msg, Err: ctx.Err()}
		case <-time.After(delay):
		}
		if delay < time.Second {
			delay *= 2
		}
	}
}

// SetImage changes the service's image, once for all nodes (a call for
// another node finds it done, also when the calls come at once). It is
// one service update, so a kill cannot leave it half made. The service
// must be at 0 replicas.
func (c *Swarm) SetImage(ctx context.Context, name, image string) error {
	action := "set image"
	if _, err := c.position(name, action); err != nil {
		return err
	}
	c.imageMu.Lock()
	defer c.imageMu.Unlock()
	svc, err := c.service(ctx, action)
	if err != nil {
		return err
	}
	cs := svc.Spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return &Error{Node: c.opts.SwarmService, Action: action, Reason: "service has no container spec", Err: cerrdefs.ErrInvalidArgument}
	}
	oldImage, oldDigest := splitDigest(cs.Image)
	if oldImage == image || cs.Image == image {
		return nil // done already (SetImage is called once per node; the service changes once)
	}
	if replicas(svc) != 0 {
		return &Error{Node: c.opts.SwarmService, Action: action,
			Reason: "service still has replicas: stop all nodes first (no rolling update across versions)", Err: cerrdefs.ErrConflict}
	}
	spec := svc.Spec
	newCS := *cs
	newCS.Image = image
	spec.TaskTemplate.ContainerSpec = &newCS
	spec.Labels = cloneLabels(spec.Labels)
	spec.Labels[LabelPreviousImage] = oldImage
	spec.Labels[LabelPreviousDigest] = oldDigest
	if _, ok := spec.Labels[LabelReplicas]; !ok {
		spec.Labels[LabelReplicas] = strconv.Itoa(size(svc))
	}
	// Registry auth for the nodes' pull comes from the same credentials.
	auth, _ := c.registryAuth(registryDomain(image))
	cctx, cancel := c.call(ctx)
	defer cancel()
	if _, err := c.cli.ServiceUpdate(cctx, svc.ID, client.ServiceUpdateOptions{Version: svc.Version, Spec: spec, EncodedRegistryAuth: auth}); err != nil {
		return c.wrap(c.opts.SwarmService, action+" "+image, err)
	}
	c.log.Info().Str("image", image).Str("previous", cs.Image).Msg("service image changed")
	return nil
}

func registryDomain(image string) string {
	first, _, ok := strings.Cut(image, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}
