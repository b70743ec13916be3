package lb

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/ports"
)

// WithProbe holds a switch until the public URL shows it, and says what
// to check when it never does; without a URL the balancer is unchanged.
func TestWithProbe(t *testing.T) {
	none, err := NewNone(ProbeOptions{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := WithProbe(none, ProbeOptions{}, "", zerolog.Nop()); err != nil || b != ports.Balancer(none) {
		t.Fatalf("no URL: %v, %v: want the balancer itself", b, err)
	}
	if _, err := WithProbe(none, ProbeOptions{URL: "ftp://x"}, "", zerolog.Nop()); err == nil {
		t.Fatal("an ftp URL was accepted")
	}
	// The URL shows the maintenance page from its third request on, as a
	// proxy that follows the switch late.
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) >= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	b, err := WithProbe(none, ProbeOptions{URL: srv.URL, Interval: 10 * time.Millisecond, Timeout: 5 * time.Second}, "check the Service", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetMode(context.Background(), ports.LBMaintenance); err != nil || n.Load() < 3 {
		t.Fatalf("switch to maintenance: %v after %d requests, want it confirmed by the third", err, n.Load())
	}
	// A URL that never shows the page fails the switch with the hint.
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	b, _ = WithProbe(none, ProbeOptions{URL: ok.URL, Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond}, "check the Service", zerolog.Nop())
	err = b.SetMode(context.Background(), ports.LBMaintenance)
	if err == nil || !strings.Contains(err.Error(), "still answers 200") || !strings.Contains(err.Error(), "check the Service") {
		t.Fatalf("switch the URL never shows: %v", err)
	}
}
