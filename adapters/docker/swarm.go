package docker

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/nocobot/nocobot/procedures"
)

// In Swarm mode the nodes are the slots of one replicated service, named
// "<service>.<slot>" like the service's task containers. Slots are
// interchangeable to Swarm, so the node operations become scaling:
//
//	Stop("svc.k")  → scale to k-1 (if more run), so slots ≥ k stop
//	Start("svc.k") → scale to k (if fewer run)
//	StopAll        → scale to 0
//	StartRest      → scale to the cluster's size
//	SetImage       → service update with the new image, only at 0 replicas
//	                 (no rolling update across versions)
//
// The cluster's size is remembered in the service label nocobot.replicas
// when it is first scaled down. Each scaling waits until the tasks have
// converged, logging every task's state as it changes.

func (c *Cluster) service(ctx context.Context, action string) (swarm.Service, error) {
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

func (c *Cluster) slotOf(name, action string) (int, error) {
	prefix := c.opts.SwarmService + "."
	k, err := strconv.Atoi(strings.TrimPrefix(name, prefix))
	if !strings.HasPrefix(name, prefix) || err != nil || k < 1 {
		return 0, &Error{Node: name, Action: action, Reason: fmt.Sprintf("not a node of service %s (want %s<slot>)", c.opts.SwarmService, prefix), Err: cerrdefs.ErrInvalidArgument}
	}
	return k, nil
}

func (c *Cluster) tasks(ctx context.Context, svcID string) ([]swarm.Task, error) {
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

func (c *Cluster) swarmList(ctx context.Context) ([]procedures.Node, error) {
	svc, err := c.service(ctx, "list nodes")
	if err != nil {
		return nil, err
	}
	tasks, err := c.tasks(ctx, svc.ID)
	if err != nil {
		return nil, c.wrap(c.opts.SwarmService, "list tasks", err)
	}
	bySlot := slotTasks(tasks)
	image, digest := splitDigest(svc.Spec.TaskTemplate.ContainerSpec.Image)
	n := size(svc)
	nodes := make([]procedures.Node, 0, n)
	for slot := 1; slot <= n; slot++ {
		node := procedures.Node{Name: fmt.Sprintf("%s.%d", svc.Spec.Name, slot), Image: image, Digest: digest, State: "exited"}
		if t, ok := bySlot[slot]; ok && slot <= replicas(svc) {
			node.State = string(t.Status.State)
			if t.Status.ContainerStatus != nil {
				node.ID = t.Status.ContainerStatus.ContainerID
			}
			node.URL = c.taskURL(svc, t)
		}
		if node.URL == "" {
			node.URL = c.slotURL(svc, slot)
		}
		nodes = append(nodes, node)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes, nil
}

// splitDigest splits "repo:tag@sha256:…" (Swarm pins digests this way).
func splitDigest(ref string) (image, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

func (c *Cluster) slotURL(svc swarm.Service, slot int) string {
	u := svc.Spec.Labels[LabelURL]
	if u == "" && svc.Spec.TaskTemplate.ContainerSpec != nil {
		u = svc.Spec.TaskTemplate.ContainerSpec.Labels[LabelURL]
	}
	return strings.TrimRight(strings.ReplaceAll(u, "{slot}", strconv.Itoa(slot)), "/")
}

func (c *Cluster) taskURL(svc swarm.Service, t swarm.Task) string {
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

func (c *Cluster) swarmStop(ctx context.Context, name string) error {
	k, err := c.slotOf(name, "stop")
	if err != nil {
		return err
	}
	return c.swarmScale(ctx, "stop "+name, func(cur, size int) int { return min(cur, k-1) })
}

func (c *Cluster) swarmStart(ctx context.Context, name string) error {
	k, err := c.slotOf(name, "start")
	if err != nil {
		return err
	}
	return c.swarmScale(ctx, "start "+name, func(cur, size int) int {
		if k > size {
			return -1
		}
		return max(cur, k)
	})
}

// swarmScale sets the replica count to target(current, size) and waits
// for the tasks to converge. A negative target is an unknown slot.
func (c *Cluster) swarmScale(ctx context.Context, action string, target func(cur, size int) int) error {
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

// converge waits until exactly want tasks run (slots 1..want) and no
// other task is still running, logging task states as they change.
func (c *Cluster) converge(ctx context.Context, svcID string, want int, action string, limit time.Duration) error {
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

func (c *Cluster) swarmSetImage(ctx context.Context, name, image string) error {
	action := "set image"
	if _, err := c.slotOf(name, action); err != nil {
		return err
	}
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
