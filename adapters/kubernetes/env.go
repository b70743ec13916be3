package kubernetes

import (
	"context"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Env is the NocoBase container's configured environment as KEY=value:
// its ConfigMaps (envFrom, as NocoBase's Kubernetes guide sets it) and
// its own literal values, which win. Secrets are not read.
func (c *Client) Env(ctx context.Context) ([]string, error) {
	w, err := c.workload(ctx)
	if err != nil {
		return nil, err
	}
	vals := map[string]string{}
	for _, from := range w.container.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cctx, cancel := c.call(ctx)
		cm, err := c.cs.CoreV1().ConfigMaps(c.opts.Namespace).Get(cctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		cancel()
		if err != nil {
			if from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
				continue
			}
			return nil, c.apiError("configmap "+from.ConfigMapRef.Name, "read", err)
		}
		for k, v := range cm.Data {
			vals[from.Prefix+k] = v
		}
	}
	for _, e := range w.container.Env {
		if e.ValueFrom == nil {
			vals[e.Name] = e.Value
		}
	}
	out := make([]string, 0, len(vals))
	for k, v := range vals {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}
