package lb

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// balancer is a stand-in for another load balancer driven by a webhook:
// the hook flips what its public side answers.
type balancer struct {
	mu       sync.Mutex
	mode     string
	bodies   []map[string]string
	auth     []string
	hookCode int
}

func (b *balancer) hook(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var body map[string]string
	_ = json.NewDecoder(r.Body).Decode(&body)
	b.bodies = append(b.bodies, body)
	b.auth = append(b.auth, r.Header.Get("Authorization"))
	if b.hookCode != 0 {
		w.WriteHeader(b.hookCode)
		io.WriteString(w, "balancer says no")
		return
	}
	b.mode = body["mode"]
}

func (b *balancer) public(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mode == "maintenance" {
		w.WriteHeader(503)
		return
	}
	io.WriteString(w, "app")
}

func TestWebhook(t *testing.T) {
	b := &balancer{}
	hook := httptest.NewServer(http.HandlerFunc(b.hook))
	defer hook.Close()
	pub := httptest.NewServer(http.HandlerFunc(b.public))
	defer pub.Close()
	log := zerolog.New(zerolog.NewTestWriter(t))
	ctx := context.Background()

	w, err := NewWebhook(WebhookOptions{URL: hook.URL + "/switch", Cluster: "prod", Headers: map[string]string{"Authorization": "Bearer hook-secret"},
		Probe: ProbeOptions{URL: pub.URL, Interval: 20 * time.Millisecond}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetMode(ctx, ports.LBMaintenance); err != nil {
		t.Fatal(err)
	}
	if m, err := w.Mode(ctx); err != nil || m != ports.LBMaintenance {
		t.Fatalf("mode = %s, %v", m, err)
	}
	if err := w.SetMode(ctx, ports.LBNormal); err != nil {
		t.Fatal(err)
	}
	if m, err := w.Mode(ctx); err != nil || m != ports.LBNormal {
		t.Fatalf("mode = %s, %v", m, err)
	}
	if len(b.bodies) != 2 || b.bodies[0]["cluster"] != "prod" || b.bodies[0]["mode"] != "maintenance" || b.bodies[1]["mode"] != "normal" {
		t.Errorf("bodies = %v", b.bodies)
	}
	if b.auth[0] != "Bearer hook-secret" {
		t.Errorf("auth = %q", b.auth)
	}

	b.hookCode = 500
	err = w.SetMode(ctx, ports.LBMaintenance)
	if err == nil || !strings.Contains(err.Error(), "HTTP 500: balancer says no") || strings.Contains(err.Error(), "hook-secret") {
		t.Fatalf("err = %v", err)
	}
	if err := w.SetMode(ctx, "sideways"); err == nil {
		t.Fatal("bad mode accepted")
	}
}

func TestWebhookWithoutProbeRemembersMode(t *testing.T) {
	b := &balancer{}
	hook := httptest.NewServer(http.HandlerFunc(b.hook))
	defer hook.Close()
	w, err := NewWebhook(WebhookOptions{URL: hook.URL + "/switch?token=abc"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if m, _ := w.Mode(ctx); m != ports.LBUnknown {
		t.Fatalf("mode = %s", m)
	}
	if err := w.SetMode(ctx, ports.LBMaintenance); err != nil {
		t.Fatal(err)
	}
	if m, _ := w.Mode(ctx); m != ports.LBMaintenance {
		t.Fatalf("mode = %s", m)
	}
	hook.Close()
	err = w.SetMode(ctx, ports.LBNormal)
	if err == nil || strings.Contains(err.Error(), "token=abc") {
		t.Fatalf("err = %v (must not show the URL's token)", err)
	}
}

func TestNone(t *testing.T) {
	n, err := NewNone(ProbeOptions{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetMode(context.Background(), ports.LBMaintenance); err != nil {
		t.Fatal(err)
	}
	if m, _ := n.Mode(context.Background()); m != ports.LBUnknown {
		t.Fatalf("mode = %s", m)
	}
	b := &balancer{mode: "maintenance"}
	pub := httptest.NewServer(http.HandlerFunc(b.public))
	defer pub.Close()
	n, err = NewNone(ProbeOptions{URL: pub.URL}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := n.Mode(context.Background()); err != nil || m != ports.LBMaintenance {
		t.Fatalf("mode = %s, %v", m, err)
	}
}
