// Package lb switches the cluster's load balancer between the app nodes and
// the 503 maintenance page: nginx with a flag file (see deploy/nginx/), an
// HTTP webhook for other balancers, or none.
//
// After a switch, an optional probe of the public URL confirms that the
// balancer really answers 503 (or no longer does), so a wrong setup is
// caught before the cluster goes down rather than by its users.
package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// Containers is what the nginx balancer needs from the Docker adapter when
// the flag file lives inside the load balancer's container.
type Containers interface {
	Exec(ctx context.Context, container string, cmd []string, stdin io.Reader, stdout io.Writer) error
	CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error)
	CopyTo(ctx context.Context, container, dir string, tarStream io.Reader) error
}

var (
	_ ports.Balancer = (*Nginx)(nil)
	_ ports.Balancer = (*Webhook)(nil)
	_ ports.Balancer = (*None)(nil)
	_ ports.Balancer = (*Probed)(nil)
)

// ProbeOptions configures the check of the public URL after a switch.
type ProbeOptions struct {
	// URL is the public URL through the balancer, e.g.
	// "https://nocobase.example.com/api/__health_check". Empty: no probe.
	URL string
	// Timeout is how long the switch may take to show (default 15s).
	Timeout time.Duration
	// Interval is the time between two probes (default 500ms).
	Interval time.Duration
	// RequestTimeout bounds one request (default 5s).
	RequestTimeout time.Duration
	// HTTPClient, if set, replaces the default client (custom CAs…).
	HTTPClient *http.Client
}

type prober struct {
	opts ProbeOptions
	http *http.Client
	log  zerolog.Logger
	// hint ends the error of a switch the URL does not show: what to check.
	hint string
}

func newProber(opts ProbeOptions, log zerolog.Logger) (*prober, error) {
	if opts.URL == "" {
		return nil, nil
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("probe URL %q: want an http(s) URL", opts.URL)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	hc := opts.HTTPClient
	if hc == nil {
		// Redirects are not followed: a redirect to a login page must
		// not hide a 503.
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &prober{opts: opts, http: hc, log: log, hint: "is the balancer using this flag/webhook?"}, nil
}

// status returns the HTTP status the public URL answers now.
func (p *prober) status(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.opts.URL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := p.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("probe %s: %w", p.opts.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// mode reads the mode from the public URL: 503 means the maintenance page.
func (p *prober) mode(ctx context.Context) (ports.LBMode, error) {
	st, err := p.status(ctx)
	if err != nil {
		return ports.LBUnknown, err
	}
	if st == http.StatusServiceUnavailable {
		return ports.LBMaintenance, nil
	}
	return ports.LBNormal, nil
}

// confirm polls the public URL until it shows mode, or fails after the
// probe timeout with what it saw.
func (p *prober) confirm(ctx context.Context, mode ports.LBMode) error {
	if p == nil {
		return nil
	}
	deadline := time.Now().Add(p.opts.Timeout)
	var lastStatus int
	var lastErr error
	for {
		st, err := p.status(ctx)
		lastStatus, lastErr = st, err
		if err == nil {
			got := ports.LBNormal
			if st == http.StatusServiceUnavailable {
				got = ports.LBMaintenance
			}
			if got == mode {
				p.log.Info().Str("url", p.opts.URL).Int("status", st).Str("mode", string(mode)).Msg("switch confirmed by probe")
				return nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("confirm %s mode at %s: %w", mode, p.opts.URL, ctx.Err())
		case <-time.After(p.opts.Interval):
		}
	}
	if lastErr != nil {
		return fmt.Errorf("switched to %s, but the public URL could not be checked for %s: %w", mode, p.opts.Timeout, lastErr)
	}
	if mode == ports.LBMaintenance {
		return fmt.Errorf("switched to maintenance, but %s still answers %d after %s (not 503): %s",
			p.opts.URL, lastStatus, p.opts.Timeout, p.hint)
	}
	return fmt.Errorf("switched back to normal, but %s still answers 503 after %s", p.opts.URL, p.opts.Timeout)
}

func checkMode(mode ports.LBMode) error {
	if mode != ports.LBNormal && mode != ports.LBMaintenance {
		return fmt.Errorf("cannot switch the load balancer to mode %q", mode)
	}
	return nil
}

// None is for clusters without a balancer the bot can switch: SetMode does
// nothing, and Mode is read from the probe URL if there is one.
type None struct {
	probe *prober
	log   zerolog.Logger
}

// NewNone returns a Balancer that switches nothing. probe may be zero.
func NewNone(probe ProbeOptions, log zerolog.Logger) (*None, error) {
	log = log.With().Str("adapter", "lb").Str("lb", "none").Logger()
	p, err := newProber(probe, log)
	if err != nil {
		return nil, err
	}
	return &None{probe: p, log: log}, nil
}

// SetMode only logs: there is nothing to switch.
func (n *None) SetMode(ctx context.Context, mode ports.LBMode) error {
	if err := checkMode(mode); err != nil {
		return err
	}
	n.log.Warn().Str("mode", string(mode)).Msg("no load balancer configured: traffic is not switched")
	return nil
}

// Mode is LBUnknown unless a probe URL tells.
func (n *None) Mode(ctx context.Context) (ports.LBMode, error) {
	if n.probe == nil {
		return ports.LBUnknown, nil
	}
	return n.probe.mode(ctx)
}

// Probed adds the probe of the public URL to a balancer that switches
// something else than what users reach, such as a Kubernetes Service's
// selector, which endpoints, kube-proxy and ingress controllers follow
// later: each switch returns only once the public URL shows it, so no
// node stops while users still reach it, and no run says traffic is back
// before users get the app.
type Probed struct {
	ports.Balancer
	probe *prober
}

// WithProbe returns b with the probe of probe.URL after each switch, or
// b itself when there is no URL. hint says, in a switch the URL does not
// show, what to check (e.g. that the URL goes through the Service).
func WithProbe(b ports.Balancer, probe ProbeOptions, hint string, log zerolog.Logger) (ports.Balancer, error) {
	if probe.URL == "" {
		return b, nil
	}
	p, err := newProber(probe, log.With().Str("adapter", "lb").Str("lb", "probe").Logger())
	if err != nil {
		return nil, err
	}
	if hint != "" {
		p.hint = hint
	}
	return &Probed{Balancer: b, probe: p}, nil
}

// SetMode switches b, then waits until the public URL shows the switch
// (or fails after the probe timeout, saying what the URL answered). Mode
// stays b's own: what it switched, not what a cache in front shows.
func (p *Probed) SetMode(ctx context.Context, mode ports.LBMode) error {
	if err := p.Balancer.SetMode(ctx, mode); err != nil {
		return err
	}
	return p.probe.confirm(ctx, mode)
}
