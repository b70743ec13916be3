package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// An HPA would scale the workload back up to its minimum while nocobot
// holds nodes down (it leaves a workload at 0 replicas alone, not one at
// 1). While nodes are down its minimum is held at 1, the real one
// recorded on the HPA itself in the same update, and put back by the
// scale that brings the workload to its full size.

// HPA names the autoscaler on the workload, "" when there is none (the
// plan names it: it is paused during the procedure).
func (c *Client) HPA(ctx context.Context) (string, error) {
	w, err := c.workload(ctx)
	if err != nil {
		return "", err
	}
	h, err := c.hpaOf(ctx, w)
	if err != nil || h == nil {
		return "", err
	}
	return h.Name, nil
}

func (c *Client) hpaOf(ctx context.Context, w workload) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	l, err := c.cs.AutoscalingV2().HorizontalPodAutoscalers(c.opts.Namespace).List(cctx, metav1.ListOptions{})
	if err != nil {
		return nil, c.apiError("horizontalpodautoscalers", "list", err)
	}
	kind := map[string]string{"deployment": "Deployment", "statefulset": "StatefulSet"}[w.kind]
	for i, h := range l.Items {
		if h.Spec.ScaleTargetRef.Kind == kind && h.Spec.ScaleTargetRef.Name == w.name {
			return &l.Items[i], nil
		}
	}
	return nil, nil
}

func (c *Client) pauseHPA(ctx context.Context, w workload) error {
	h, err := c.hpaOf(ctx, w)
	if err != nil || h == nil {
		return err
	}
	if _, held := h.Annotations[AnnotationMinReplicas]; held {
		return nil
	}
	min := int32(1)
	if h.Spec.MinReplicas != nil {
		min = *h.Spec.MinReplicas
	}
	if min <= 1 {
		return nil
	}
	if err := c.patchHPA(ctx, h.Name, h.ResourceVersion, strconv.Itoa(int(min)), 1); err != nil {
		return err
	}
	c.log.Info().Str("hpa", h.Name).Int32("min", min).Msg("autoscaler paused: its minimum held at 1")
	return nil
}

func (c *Client) restoreHPA(ctx context.Context, w workload) error {
	h, err := c.hpaOf(ctx, w)
	if err != nil || h == nil {
		return err
	}
	v, held := h.Annotations[AnnotationMinReplicas]
	if !held {
		return nil
	}
	min, err := strconv.Atoi(v)
	if err != nil || min < 1 {
		return fmt.Errorf("kubernetes: horizontalpodautoscaler %s: recorded minimum %q is not a count", h.Name, v)
	}
	if err := c.patchHPA(ctx, h.Name, h.ResourceVersion, "", int32(min)); err != nil {
		return err
	}
	c.log.Info().Str("hpa", h.Name).Int("min", min).Msg("autoscaler restored")
	return nil
}

// patchHPA sets the minimum and the record (removed when record is "").
func (c *Client) patchHPA(ctx context.Context, name, rv, record string, min int32) error {
	var rec any = record
	if record == "" {
		rec = nil
	}
	body, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": rv, "annotations": map[string]any{AnnotationMinReplicas: rec}},
		"spec":     map[string]any{"minReplicas": min},
	})
	cctx, cancel := c.call(ctx)
	defer cancel()
	if _, err := c.cs.AutoscalingV2().HorizontalPodAutoscalers(c.opts.Namespace).Patch(cctx, name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		return c.apiError("horizontalpodautoscaler "+name, "patch", err)
	}
	return nil
}

// PlanNote names, for the plan, the autoscaler that the run holds while
// nodes are down; "" when the workload has none.
func (n *Nodes) PlanNote(ctx context.Context) string {
	name, err := n.HPA(ctx)
	switch {
	case err != nil:
		return fmt.Sprintf("Autoscaler: could not be read (%v); one on the workload is held at 1 while nodes are down", err)
	case name == "":
		return ""
	}
	return fmt.Sprintf("Autoscaler: %s is held at a minimum of 1 while nodes are down (its minimum recorded on it), put back when every node runs", name)
}
