package kubetest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

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
	return cp.endpoint(ctx, svc, svc.Spec.Selector)
}

// endpoint is a ready pod of selector, on svc's target port.
func (cp *ControlPlane) endpoint(ctx context.Context, svc *corev1.Service, selector map[string]string) (string, error) {
	pods, err := cp.Admin.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()})
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
	return "", fmt.Errorf("service %s has no ready endpoint", svc.Name)
}

// Proxy is a public URL in front of a Service, as an ingress and
// kube-proxy make one: each request goes to a ready pod the Service
// selects. A change of the Service's selector reaches it only Lag after
// it was made, as a real cluster's endpoints and proxies follow a Service
// asynchronously (a very long Lag: a URL that does not go through this
// Service at all). It keeps every answer it gave.
type Proxy struct {
	URL string
	Lag time.Duration

	mu       sync.Mutex
	applied  map[string]string // the selector requests follow
	pending  map[string]string // the Service's newer selector, and since when
	since    time.Time
	answers  []Answer
	stop     chan struct{}
	finished chan struct{}
}

// Answer is one answer of the proxy.
type Answer struct {
	At          time.Time
	Status      int
	Maintenance bool // the maintenance page
	App         bool // NocoBase answering healthy
}

// ServiceProxy serves a public URL for Service name of the cluster.
func (c *Cluster) ServiceProxy(t testing.TB, name string, lag time.Duration) *Proxy {
	t.Helper()
	cp := c.CP
	get := func(ctx context.Context) (*corev1.Service, error) {
		return cp.Admin.CoreV1().Services(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	svc, err := get(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Lag: lag, applied: svc.Spec.Selector, stop: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s, err := get(ctx)
			cancel()
			if err != nil {
				continue
			}
			p.follow(s.Spec.Selector)
		}
	}()
	hc := &http.Client{Timeout: 5 * time.Second}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		p.mu.Lock()
		sel := p.applied
		p.mu.Unlock()
		s, err := get(ctx)
		var u string
		if err == nil {
			u, err = cp.endpoint(ctx, s, sel)
		}
		if err != nil {
			p.answer(w, http.StatusBadGateway, nil, "no endpoint: "+err.Error())
			return
		}
		res, err := hc.Get(u + r.URL.RequestURI())
		if err != nil {
			p.answer(w, http.StatusBadGateway, nil, err.Error())
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		p.answer(w, res.StatusCode, res.Header, string(body))
	}))
	p.URL = srv.URL
	t.Cleanup(func() {
		close(p.stop)
		<-p.finished
		srv.Close()
	})
	return p
}

// follow takes in the Service's selector now: a new one applies Lag
// after it was first seen.
func (p *Proxy) follow(sel map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	switch {
	case maps.Equal(sel, p.applied):
		p.pending = nil
	case !maps.Equal(sel, p.pending):
		p.pending, p.since = sel, now
	case now.Sub(p.since) >= p.Lag:
		p.applied, p.pending = sel, nil
	}
}

func (p *Proxy) answer(w http.ResponseWriter, status int, h http.Header, body string) {
	if ct := h.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	p.mu.Lock()
	p.answers = append(p.answers, Answer{At: time.Now(), Status: status,
		Maintenance: status == http.StatusServiceUnavailable && body == MaintenanceBody, App: status == http.StatusOK})
	p.mu.Unlock()
}

// Answers are the answers given so far, oldest first.
func (p *Proxy) Answers() []Answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Answer(nil), p.answers...)
}
