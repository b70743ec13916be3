package lb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// WebhookOptions configures the webhook balancer.
type WebhookOptions struct {
	// URL receives a POST with {"cluster":…,"mode":"maintenance"|"normal"}
	// and must answer 2xx once the switch is done.
	URL string
	// Cluster is sent in the body so one hook can serve several clusters.
	Cluster string
	// Headers are added to every request, e.g. Authorization. Their values
	// are treated as secrets: never logged nor put in errors.
	Headers map[string]string
	// Timeout bounds one call (default 10s).
	Timeout time.Duration
	// HTTPClient, if set, replaces the default client.
	HTTPClient *http.Client
	// Probe, if its URL is set, confirms each switch and answers Mode.
	Probe ProbeOptions
}

// Webhook asks another system to switch the balancer.
type Webhook struct {
	opts  WebhookOptions
	http  *http.Client
	probe *prober
	log   zerolog.Logger

	mu   sync.Mutex
	last ports.LBMode
}

// NewWebhook returns the webhook balancer.
func NewWebhook(opts WebhookOptions, log zerolog.Logger) (*Webhook, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may carry a token: do not echo it.
		return nil, errors.New("load balancer webhook: want an http(s) URL")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	log = log.With().Str("adapter", "lb").Str("lb", "webhook").Str("host", u.Host).Logger()
	p, err := newProber(opts.Probe, log)
	if err != nil {
		return nil, err
	}
	return &Webhook{opts: opts, http: hc, probe: p, log: log, last: ports.LBUnknown}, nil
}

// SetMode calls the hook, then confirms through the probe if configured.
func (w *Webhook) SetMode(ctx context.Context, mode ports.LBMode) error {
	if err := checkMode(mode); err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"cluster": w.opts.Cluster, "mode": string(mode)})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, w.opts.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("load balancer webhook: bad request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nocobot")
	for k, v := range w.opts.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a token
		}
		return fmt.Errorf("load balancer webhook (switch to %s): %w", mode, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("load balancer webhook (switch to %s): HTTP %d: %s", mode, resp.StatusCode,
			strings.Join(strings.Fields(string(msg)), " "))
	}
	w.mu.Lock()
	w.last = mode
	w.mu.Unlock()
	w.log.Info().Str("mode", string(mode)).Int("status", resp.StatusCode).Msg("load balancer switched")
	return w.probe.confirm(ctx, mode)
}

// Mode is read from the probe URL if there is one; otherwise it is the
// last mode this process set (LBUnknown after a restart).
func (w *Webhook) Mode(ctx context.Context) (ports.LBMode, error) {
	if w.probe != nil {
		return w.probe.mode(ctx)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, nil
}
