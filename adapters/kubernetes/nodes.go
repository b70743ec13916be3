package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nocobot/nocobot/ports"
)

// Nodes are the pods of the workload, by position: "<workload>.1" is the
// oldest running pod, then the others by age, then the pods still
// starting, then the stopped positions up to the workload's full size.
// A StatefulSet's pods have names that are their positions: its nodes
// are "<workload>-0" (position 1) up to its full size.
// The controller picks which pods go when it scales down, so a node is a
// position, not a pod, and the node operations become scaling:
//
//	Stop("w.k")  → scale to k-1 (if more run): positions ≥ k stop
//	Start("w.k") → scale to k (if fewer run), wait until k pods run
//	SetImage     → patch the container's image, only at 0 replicas
//
// The full size is recorded on the workload (AnnotationReplicas) in the
// same update that first scales it down, and removed by the one that
// scales it back, so a killed nocobot never loses it.
type Nodes struct {
	*Client
	imageMu sync.Mutex // concurrent SetImage calls make one patch
	scaleMu sync.Mutex // concurrent Start calls scale in turn
}

var _ ports.Nodes = (*Nodes)(nil)

// NewNodes returns the node set of the workload.
func NewNodes(c *Client) *Nodes { return &Nodes{Client: c} }

func (n *Nodes) pods(ctx context.Context, w workload) ([]corev1.Pod, error) {
	cctx, cancel := n.call(ctx)
	defer cancel()
	l, err := n.cs.CoreV1().Pods(n.opts.Namespace).List(cctx, metav1.ListOptions{LabelSelector: w.selector.String()})
	if err != nil {
		return nil, n.apiError("pods "+w.selector.String(), "list", err)
	}
	return l.Items, nil
}

func podRunning(p corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// held orders the pods that hold positions: running ones by age, then
// those still starting by age. Pods being deleted hold none.
func held(pods []corev1.Pod) []corev1.Pod {
	var run, wanted []corev1.Pod
	for _, p := range pods {
		switch {
		case p.DeletionTimestamp != nil:
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		case p.Status.Phase == corev1.PodRunning:
			run = append(run, p)
		default:
			wanted = append(wanted, p)
		}
	}
	byAge := func(s []corev1.Pod) {
		sort.Slice(s, func(i, j int) bool {
			a, b := s[i].CreationTimestamp, s[j].CreationTimestamp
			if !a.Equal(&b) {
				return a.Before(&b)
			}
			return s[i].Name < s[j].Name
		})
	}
	byAge(run)
	byAge(wanted)
	return append(run, wanted...)
}

// List returns the nodes in position order.
func (n *Nodes) List(ctx context.Context) ([]ports.Node, error) {
	w, err := n.workload(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	pods, err := n.pods(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	if w.kind == "statefulset" {
		return n.ordinals(w, pods), nil
	}
	hp := held(pods)
	size := max(w.size(), len(hp))
	out := make([]ports.Node, 0, size)
	for i := range size {
		var p *corev1.Pod
		if i < len(hp) {
			p = &hp[i]
		}
		out = append(out, n.node(w, fmt.Sprintf("%s.%d", w.name, i+1), p))
	}
	return out, nil
}

// ordinals are a StatefulSet's nodes: its pods by name, "<name>-0" up
// to its full size. Its controller removes the highest ordinals first when
// it scales down, so a pod's name is its position, and it is also what
// kubectl shows.
func (n *Nodes) ordinals(w workload, pods []corev1.Pod) []ports.Node {
	byName := map[string]*corev1.Pod{}
	size := w.size()
	for i, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		byName[p.Name] = &pods[i]
		if o, err := strconv.Atoi(strings.TrimPrefix(p.Name, w.name+"-")); err == nil && strings.HasPrefix(p.Name, w.name+"-") && o >= size {
			size = o + 1
		}
	}
	out := make([]ports.Node, 0, size)
	for i := range size {
		name := fmt.Sprintf("%s-%d", w.name, i)
		out = append(out, n.node(w, name, byName[name]))
	}
	return out
}

// node is the node called name, held by pod p (nil: stopped).
func (n *Nodes) node(w workload, name string, p *corev1.Pod) ports.Node {
	image, digest := splitDigest(w.container.Image)
	node := ports.Node{Name: name, Image: image, Digest: digest, State: "exited"}
	if p == nil {
		return node
	}
	node.ID = p.Name
	node.State = strings.ToLower(string(p.Status.Phase))
	if podRunning(*p) {
		node.State = "running"
		node.Health = "starting"
		if podReady(*p) {
			node.Health = "healthy"
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == w.container.Name {
			if d := imageIDDigest(cs.ImageID); d != "" {
				node.Digest = d
			}
		}
	}
	if p.Status.PodIP != "" {
		node.URL = fmt.Sprintf("http://%s:%d", hostPort(p.Status.PodIP), n.opts.Port)
	}
	return node
}

func hostPort(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

// imageIDDigest is the digest in a container status' imageID
// ("docker-pullable://repo@sha256:…", "repo@sha256:…" or "sha256:…").
func imageIDDigest(id string) string {
	if i := strings.LastIndex(id, "@"); i >= 0 {
		return id[i+1:]
	}
	if strings.HasPrefix(id, "sha256:") {
		return id
	}
	return ""
}

// position is k of a node name: "<workload>.k" for a Deployment, and
// for a StatefulSet its pod's name "<workload>-(k-1)".
func (n *Nodes) position(w workload, name string) (int, error) {
	sep, first, want := ".", 1, "<n>"
	if w.kind == "statefulset" {
		sep, first, want = "-", 0, "<ordinal>"
	}
	prefix := w.name + sep
	k, err := strconv.Atoi(strings.TrimPrefix(name, prefix))
	if !strings.HasPrefix(name, prefix) || err != nil || k < first {
		return 0, fmt.Errorf("%s: not a node of %s %s (want %s%s)", name, w.kind, w.name, prefix, want)
	}
	return k - first + 1, nil
}

// Stop stops the node at position k and any after it: the workload is
// scaled to k-1 (if more run). It returns when no pod beyond k-1 is left,
// terminating ones included.
func (n *Nodes) Stop(ctx context.Context, name string) error {
	return n.scaleNode(ctx, name, "stop", func(k, cur, size int) int { return min(cur, k-1) })
}

// Start starts the node at position k (and any before it): the workload
// is scaled to k (if fewer run). It returns when k pods run (not when
// NocoBase is healthy: that is the App's job).
func (n *Nodes) Start(ctx context.Context, name string) error {
	return n.scaleNode(ctx, name, "start", func(k, cur, size int) int {
		if k > size {
			return -1
		}
		return max(cur, k)
	})
}

func (n *Nodes) scaleNode(ctx context.Context, name, action string, target func(k, cur, size int) int) error {
	n.scaleMu.Lock()
	defer n.scaleMu.Unlock()
	if action == "start" {
		if err := n.settled(ctx); err != nil {
			return fmt.Errorf("%s: %s: %w", name, action, err)
		}
	}
	var w workload
	var k, want int
	err := retryConflict(ctx, func() error {
		var err error
		if w, err = n.workload(ctx); err != nil {
			return fmt.Errorf("%s: %s: %w", name, action, err)
		}
		if k, err = n.position(w, name); err != nil {
			return err
		}
		want = target(k, w.replicas, w.size())
		if want < 0 {
			return fmt.Errorf("%s: %s: %s %s has %d nodes", name, action, w.kind, w.name, w.size())
		}
		if err := n.scale(ctx, w, want); err != nil {
			return fmt.Errorf("%s: %s: %w", name, action, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if want < k {
		return n.waitPods(ctx, w, want, false, n.opts.StopTimeout, name+": "+action)
	}
	return n.waitPods(ctx, w, want, true, n.opts.StartTimeout, name+": "+action)
}

// scale sets the replicas, recording the full size while below it, and
// pauses or restores the HPA around it (hpa.go).
func (n *Nodes) scale(ctx context.Context, w workload, want int) error {
	size := w.size()
	if want < size {
		if err := n.pauseHPA(ctx, w); err != nil {
			return err
		}
	}
	if want == w.replicas && (want < size || w.annotations[AnnotationReplicas] == "") {
		return nil
	}
	ann := map[string]any{AnnotationReplicas: strconv.Itoa(size)}
	if want >= size {
		ann[AnnotationReplicas] = nil // back to full size: nothing to remember
	}
	body := map[string]any{
		"metadata": map[string]any{"annotations": ann},
		"spec":     map[string]any{"replicas": want},
	}
	if err := n.patch(ctx, w, types.MergePatchType, body); err != nil {
		return err
	}
	n.log.Info().Str("workload", w.name).Int("from", w.replicas).Int("to", want).Int("size", size).Msg("workload scaled")
	if want >= size {
		return n.restoreHPA(ctx, w)
	}
	return nil
}

// waitPods waits until exactly want pods hold positions and no other pod
// is left (up), or at most want pods exist at all (down). A pod that
// cannot start (image pull failing, crash loop) fails the wait at once.
func (n *Nodes) waitPods(ctx context.Context, w workload, want int, up bool, limit time.Duration, action string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	seen := map[string]string{}
	for {
		pods, err := n.pods(ctx, w)
		if err != nil {
			return fmt.Errorf("%s: %w", action, err)
		}
		running, other := 0, 0
		var broken, left []string
		for _, p := range pods {
			st := string(p.Status.Phase)
			if p.DeletionTimestamp != nil {
				st = "Terminating"
			} else if podRunning(p) && !podReady(p) {
				st = "Running, not Ready"
			}
			left = append(left, p.Name+" "+st)
			if seen[p.Name] != st {
				seen[p.Name] = st
				n.log.Info().Str("pod", p.Name).Str("phase", st).Msg("pod")
			}
			if podRunning(p) {
				running++
			} else if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				other++
			}
			for _, cs := range p.Status.ContainerStatuses {
				if wt := cs.State.Waiting; wt != nil && (wt.Reason == "ImagePullBackOff" || wt.Reason == "ErrImagePull" || wt.Reason == "CrashLoopBackOff" || wt.Reason == "InvalidImageName" || wt.Reason == "CreateContainerConfigError") {
					broken = append(broken, fmt.Sprintf("%s: %s: %s", p.Name, wt.Reason, wt.Message))
				}
			}
		}
		if up && len(broken) > 0 {
			return fmt.Errorf("%s: %s", action, strings.Join(broken, "; "))
		}
		if up && running == want && other == 0 || !up && running+other <= want {
			return nil
		}
		select {
		case <-ctx.Done():
			if !up {
				sort.Strings(left)
				return fmt.Errorf("%s: %d pods left after %s, want at most %d (%s)%s: %w", action, running+other, limit, want, strings.Join(left, ", "), orderedHint(w), ctx.Err())
			}
			return fmt.Errorf("%s: %d of %d pods running (%d starting or terminating) after %s: %w", action, running, want, other, limit, ctx.Err())
		case <-time.After(n.opts.PollInterval):
		}
	}
}

// orderedHint says why an OrderedReady StatefulSet may keep pods that
// should go: its controller removes a pod only while every lower one is
// Ready, or when it is the lowest that is not.
func orderedHint(w workload) string {
	if w.kind != "statefulset" || !w.ordered {
		return ""
	}
	return fmt.Sprintf("; statefulset %s (podManagementPolicy OrderedReady) removes a pod only while the pods below it are Ready: delete the pods left by hand (kubectl delete pod), then retry", w.name)
}

// Cleanup has nothing to settle: an image change is one patch.
func (n *Nodes) Cleanup(ctx context.Context) ([]string, error) { return nil, nil }

// splitDigest splits "repo:tag@sha256:…".
func splitDigest(ref string) (image, digest string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}
