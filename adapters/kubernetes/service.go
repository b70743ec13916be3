package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nocobot/nocobot/ports"
)

// Service switches users between NocoBase and the maintenance page by the
// app Service's selector: in maintenance it selects the maintenance
// page's pods (deploy/kubernetes/maintenance.yaml), so every ingress
// controller, whatever it is, sends the app's traffic there. The app's
// own selector is kept on the Service (AnnotationAppSelector) in the same
// update that replaces it, and put back from there: a nocobot killed
// between the two leaves a Service that says how to bring the app back.
type Service struct {
	*Client
	name        string
	maintenance map[string]string
}

var _ ports.Balancer = (*Service)(nil)

// NewService returns the balancer of Service name; maintenance is the
// maintenance page pods' labels.
func NewService(c *Client, name string, maintenance map[string]string) (*Service, error) {
	if name == "" || len(maintenance) == 0 {
		return nil, errors.New("kubernetes: the maintenance switch needs the app Service's name and the maintenance page's labels")
	}
	return &Service{Client: c, name: name, maintenance: maintenance}, nil
}

// SetMode points the Service at the maintenance page or back at the app.
func (s *Service) SetMode(ctx context.Context, mode ports.LBMode) error {
	if mode != ports.LBNormal && mode != ports.LBMaintenance {
		return fmt.Errorf("kubernetes: unknown load balancer mode %q", mode)
	}
	return retryConflict(ctx, func() error { return s.setMode(ctx, mode) })
}

func (s *Service) setMode(ctx context.Context, mode ports.LBMode) error {
	cctx, cancel := s.call(ctx)
	defer cancel()
	svcs := s.cs.CoreV1().Services(s.opts.Namespace)
	svc, err := svcs.Get(cctx, s.name, metav1.GetOptions{})
	if err != nil {
		return s.apiError("service "+s.name, "read", err)
	}
	saved, inMaint := svc.Annotations[AnnotationAppSelector]
	var patch map[string]any
	switch {
	case mode == ports.LBMaintenance && inMaint:
		return nil
	case mode == ports.LBMaintenance:
		if maps.Equal(svc.Spec.Selector, s.maintenance) {
			return fmt.Errorf("kubernetes: service %s already selects the maintenance page, and records no app selector to go back to", s.name)
		}
		own, _ := json.Marshal(svc.Spec.Selector)
		sel := map[string]any{}
		for k := range svc.Spec.Selector {
			sel[k] = nil
		}
		for k, v := range s.maintenance {
			sel[k] = v
		}
		patch = map[string]any{
			"metadata": map[string]any{"resourceVersion": svc.ResourceVersion, "annotations": map[string]any{AnnotationAppSelector: string(own)}},
			"spec":     map[string]any{"selector": sel},
		}
	case !inMaint:
		return nil
	default:
		var own map[string]string
		if err := json.Unmarshal([]byte(saved), &own); err != nil || len(own) == 0 {
			return fmt.Errorf("kubernetes: service %s: the recorded app selector %q is unreadable: set the selector back by hand", s.name, saved)
		}
		sel := map[string]any{}
		for k := range svc.Spec.Selector {
			sel[k] = nil
		}
		for k, v := range own {
			sel[k] = v
		}
		patch = map[string]any{
			"metadata": map[string]any{"resourceVersion": svc.ResourceVersion, "annotations": map[string]any{AnnotationAppSelector: nil}},
			"spec":     map[string]any{"selector": sel},
		}
	}
	body, _ := json.Marshal(patch)
	if _, err := svcs.Patch(cctx, s.name, types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
		return s.apiError("service "+s.name, "patch", err)
	}
	s.log.Info().Str("service", s.name).Str("mode", string(mode)).Msg("traffic switched")
	return nil
}

// Mode says where the Service sends traffic now.
func (s *Service) Mode(ctx context.Context) (ports.LBMode, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	svc, err := s.cs.CoreV1().Services(s.opts.Namespace).Get(cctx, s.name, metav1.GetOptions{})
	if err != nil {
		return ports.LBUnknown, s.apiError("service "+s.name, "read", err)
	}
	if _, ok := svc.Annotations[AnnotationAppSelector]; ok {
		return ports.LBMaintenance, nil
	}
	return ports.LBNormal, nil
}
