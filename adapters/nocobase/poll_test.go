package nocobase

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// With the default settings, WaitHealthy returns within 250 ms of the
// moment a real HTTP node turns healthy, wherever that moment falls
// between two probes.
func TestWaitHealthyNoticesWithin250ms(t *testing.T) {
	for _, after := range []time.Duration{330 * time.Millisecond, 610 * time.Millisecond, 870 * time.Millisecond} {
		start := time.Now()
		healthyAt := start.Add(after)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if time.Now().Before(healthyAt) {
				fixed(answer{503, "", commanding("start", "load plugin [ai], 50/77")})(w, r)
				return
			}
			fixed(answer{200, "text/plain; charset=utf-8", "ok"})(w, r)
		}))
		c := New(Options{}, zerolog.Nop())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.WaitHealthy(ctx, ports.Node{Name: "app-2", URL: srv.URL}, nil)
		noticed := time.Now()
		cancel()
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if lag := noticed.Sub(healthyAt); lag < 0 || lag > 250*time.Millisecond {
			t.Errorf("healthy %s after the start: noticed %s later, want 0–250 ms", after, lag.Round(time.Millisecond))
		}
	}
}
