package kubetest

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ServiceURL plays kube-proxy: the address a request to Service ns/name
// reaches now, a ready pod its selector matches (on the target port), or
// an error when the Service has no endpoint (an ingress would answer its
// own 503).
func (cp *ControlPlane) ServiceURL(ctx context.Context, ns, name string) (string, error) {
	svc, err := cp.Admin.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if len(svc.Spec.Selector) == 0 || len(svc.Spec.Ports) == 0 {
		return "", fmt.Errorf("service %s has no selector or port", name)
	}
	pods, err := cp.Admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return "", err
	}
	port := svc.Spec.Ports[0].TargetPort.IntValue()
	if port == 0 {
		port = int(svc.Spec.Ports[0].Port)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), nil
			}
		}
	}
	return "", fmt.Errorf("service %s has no ready endpoint", name)
}
