package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// workload is what nocobot reads of the Deployment or StatefulSet.
type workload struct {
	kind, name      string
	replicas        int
	annotations     map[string]string
	selector        labels.Selector
	container       corev1.Container
	podSpec         corev1.PodSpec // the pod template's, for storage helper pods
	resourceVersion string
}

// size is the workload's full number of nodes: its replicas, or what
// nocobot recorded when it scaled it down.
func (w workload) size() int {
	n := w.replicas
	if v, err := strconv.Atoi(w.annotations[AnnotationReplicas]); err == nil && v > n {
		n = v
	}
	return n
}

func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.CallTimeout)
}

// workload reads the workload now.
func (c *Client) workload(ctx context.Context) (workload, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	ns := c.opts.Namespace
	switch {
	case c.opts.Deployment != "":
		d, err := c.cs.AppsV1().Deployments(ns).Get(cctx, c.opts.Deployment, metav1.GetOptions{})
		if err != nil {
			return workload{}, c.apiError("deployment "+c.opts.Deployment, "read", err)
		}
		return c.fromDeployment(d)
	case c.opts.StatefulSet != "":
		s, err := c.cs.AppsV1().StatefulSets(ns).Get(cctx, c.opts.StatefulSet, metav1.GetOptions{})
		if err != nil {
			return workload{}, c.apiError("statefulset "+c.opts.StatefulSet, "read", err)
		}
		return c.fromStatefulSet(s)
	}
	sel := labels.SelectorFromSet(c.opts.Selector).String()
	ds, err := c.cs.AppsV1().Deployments(ns).List(cctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return workload{}, c.apiError("deployments "+sel, "list", err)
	}
	switch len(ds.Items) {
	case 1:
		return c.fromDeployment(&ds.Items[0])
	case 0:
	default:
		return workload{}, fmt.Errorf("kubernetes: %d deployments match %s in %s: the selector must find one", len(ds.Items), sel, ns)
	}
	ss, err := c.cs.AppsV1().StatefulSets(ns).List(cctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return workload{}, c.apiError("statefulsets "+sel, "list", err)
	}
	if len(ss.Items) != 1 {
		return workload{}, fmt.Errorf("kubernetes: %d deployments and %d statefulsets match %s in %s: the selector must find one", 0, len(ss.Items), sel, ns)
	}
	return c.fromStatefulSet(&ss.Items[0])
}

func (c *Client) fromDeployment(d *appsv1.Deployment) (workload, error) {
	return c.build("deployment", d.Name, d.Spec.Replicas, d.Annotations, d.Spec.Selector, d.Spec.Template.Spec, d.ResourceVersion)
}

func (c *Client) fromStatefulSet(s *appsv1.StatefulSet) (workload, error) {
	return c.build("statefulset", s.Name, s.Spec.Replicas, s.Annotations, s.Spec.Selector, s.Spec.Template.Spec, s.ResourceVersion)
}

func (c *Client) build(kind, name string, replicas *int32, ann map[string]string, ls *metav1.LabelSelector, spec corev1.PodSpec, rv string) (workload, error) {
	w := workload{kind: kind, name: name, replicas: 1, annotations: ann, podSpec: spec, resourceVersion: rv}
	if replicas != nil {
		w.replicas = int(*replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil || sel.Empty() {
		return workload{}, fmt.Errorf("kubernetes: %s %s: no usable pod selector", kind, name)
	}
	w.selector = sel
	found := false
	for _, ct := range spec.Containers {
		if c.opts.Container == "" || ct.Name == c.opts.Container {
			w.container, found = ct, true
			break
		}
	}
	if !found {
		return workload{}, fmt.Errorf("kubernetes: %s %s has no container %q", kind, name, c.opts.Container)
	}
	return w, nil
}

// patch applies a merge patch to the workload, on the version read (a
// concurrent change fails it instead of being overwritten).
func (c *Client) patch(ctx context.Context, w workload, pt types.PatchType, body map[string]any) error {
	if pt == types.MergePatchType {
		md, _ := body["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
			body["metadata"] = md
		}
		md["resourceVersion"] = w.resourceVersion
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	ns := c.opts.Namespace
	if w.kind == "deployment" {
		_, err = c.cs.AppsV1().Deployments(ns).Patch(cctx, w.name, pt, data, metav1.PatchOptions{})
	} else {
		_, err = c.cs.AppsV1().StatefulSets(ns).Patch(cctx, w.name, pt, data, metav1.PatchOptions{})
	}
	if err != nil {
		return c.apiError(w.kind+" "+w.name, "patch", err)
	}
	return nil
}

// apiError says what failed in words an operator acts on; a refusal
// names the permission the Role lacks.
func (c *Client) apiError(object, action string, err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("kubernetes: %s %s in %s: forbidden (check nocobot's Role, deploy/kubernetes/rbac.yaml): %w", action, object, c.opts.Namespace, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes: %s %s in %s: not found: %w", action, object, c.opts.Namespace, err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("kubernetes: %s %s in %s: changed meanwhile, try again: %w", action, object, c.opts.Namespace, err)
	}
	return fmt.Errorf("kubernetes: %s %s in %s: %w", action, object, c.opts.Namespace, err)
}

// retryConflict runs fn again (it re-reads what it changes) while the
// API server refuses its update as based on an old version: the
// controllers write the workload's status all the time, and each write
// makes a new version.
func retryConflict(ctx context.Context, fn func() error) error {
	var err error
	for range 8 {
		if err = fn(); err == nil || !apierrors.IsConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
	return err
}
