// Package notify sends outgoing webhooks: a JSON body, signed with
// HMAC-SHA256, for each run started, run waiting for a decision, run
// finished and maintenance window announced, so that a team without Slack
// (or beside it) hears of a run waiting at 2 a.m. through its pager.
//
// Deliveries never hold a run up: the notifier reads the engine's events
// on its own subscription (which drops events rather than block the
// engine), queues each delivery per webhook without waiting, and sends
// them from one goroutine per webhook, in order, each attempt bounded by
// a timeout and retried with exponential back-off a bounded number of
// times. Queued and retrying deliveries live in this process only; of
// them, run.waiting alone is made good after a restart: each delivered
// one is noted in the store, and the next start resends the questions of
// runs still waiting that no note says were delivered.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/rs/zerolog"
)

// Headers of every delivery.
const (
	HeaderEvent     = "X-Nocobot-Event"
	HeaderDelivery  = "X-Nocobot-Delivery"
	HeaderTimestamp = "X-Nocobot-Timestamp"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// webhook's secret, of the timestamp header's value, a dot, and the body.
	HeaderSignature = "X-Nocobot-Signature"
)

// Defaults of a Webhook's zero fields and of Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultAttempts    = 6
	DefaultBackoff     = 2 * time.Second
	DefaultMaxBackoff  = 2 * time.Minute
	DefaultQueue       = 1000
	DefaultResendAfter = 30 * time.Second
	// flushGrace is how long a stopping notifier still tries what is
	// queued (one attempt each), so that a run.finished sent just before
	// a shutdown is not lost.
	flushGrace = 5 * time.Second
	// bodyLimit is how much of a receiver's answer is read (and thrown
	// away) so the connection can be reused.
	bodyLimit = 4 << 10
)

// Webhook is one receiver.
type Webhook struct {
	Name string
	URL  string
	// Secret keys the signature; empty: deliveries are not signed.
	Secret []byte
	// Authorization, when set, is sent as the Authorization header
	// (e.g. "GenieKey …" for Opsgenie).
	Authorization string
	Events        []string      // empty: all of Events
	Clusters      []string      // empty: every cluster
	Timeout       time.Duration // each attempt; 0: DefaultTimeout
	Attempts      int           // in all, the first included; 0: DefaultAttempts
}

func (w Webhook) wants(p Payload) bool {
	return (len(w.Events) == 0 || slices.Contains(w.Events, p.Event)) &&
		(len(w.Clusters) == 0 || slices.Contains(w.Clusters, p.Cluster))
}

// Options configure a Notifier.
type Options struct {
	Webhooks []Webhook
	Log      zerolog.Logger
	// Observe is told each delivery's outcome: delivered, retried (an
	// attempt failed, another follows), failed (no attempt left, or the
	// receiver refused it), dropped (the webhook's queue was full).
	Observe func(webhook, outcome string)
	// Backoff is the wait before the first retry, doubled before each
	// next one up to MaxBackoff; 0: the defaults.
	Backoff, MaxBackoff time.Duration
	Queue               int          // deliveries waiting per webhook; 0: DefaultQueue
	Client              *http.Client // nil: one that follows no redirect
	UserAgent           string       // e.g. "nocobot/v1.2.0"
	// Store, when set, notes each delivered run.waiting and, ResendAfter
	// (0: DefaultResendAfter) after Watch starts, resends those not
	// delivered before a restart.
	Store       Store
	ResendAfter time.Duration
}

// Notifier delivers the engine's events to webhooks.
type Notifier struct {
	opts  Options
	hooks []*hook
}

type hook struct {
	Webhook
	queue chan delivery
}

type delivery struct {
	p    Payload
	body []byte
}

// New checks the webhooks and makes a notifier; Watch runs it.
func New(opts Options) (*Notifier, error) {
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.ResendAfter <= 0 {
		opts.ResendAfter = DefaultResendAfter
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Observe == nil {
		opts.Observe = func(string, string) {}
	}
	if opts.Client == nil {
		// A redirect would send the body, signed, where nobody configured.
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "nocobot"
	}
	n := &Notifier{opts: opts}
	for _, w := range opts.Webhooks {
		if w.Name == "" || w.URL == "" {
			return nil, fmt.Errorf("webhook %q: a name and a URL are needed", w.Name)
		}
		for _, e := range w.Events {
			if !slices.Contains(Events, e) {
				return nil, fmt.Errorf("webhook %s: unknown event %q (known: %v)", w.Name, e, Events)
			}
		}
		if w.Timeout <= 0 {
			w.Timeout = DefaultTimeout
		}
		if w.Attempts <= 0 {
			w.Attempts = DefaultAttempts
		}
		n.hooks = append(n.hooks, &hook{Webhook: w, queue: make(chan delivery, opts.Queue)})
	}
	return n, nil
}

// Watch delivers the subscription's events until ctx ends, then takes
// the events still coming for a moment, tries what is queued once each
// for a few seconds, and closes the subscription. Subscribe before the
// engine starts so that no run is missed.
func (n *Notifier) Watch(ctx context.Context, sub *events.Subscription) {
	defer sub.Close()
	var wg sync.WaitGroup
	for _, h := range n.hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.send(ctx, h)
		}()
	}
	resent := make(chan struct{})
	go func() {
		defer close(resent)
		n.resendWaiting(ctx)
	}()
	defer func() {
		<-resent
		for _, h := range n.hooks {
			close(h.queue)
		}
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			n.drain(sub)
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			n.handle(ev)
		}
	}
}

// drainQuiet: a stopping notifier still takes the events published until
// none has come for this long (a run.finished just before the stop).
const drainQuiet = 100 * time.Millisecond

func (n *Notifier) drain(sub *events.Subscription) {
	deadline := time.NewTimer(flushGrace)
	defer deadline.Stop()
	quiet := time.NewTimer(drainQuiet)
	defer quiet.Stop()
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			n.handle(ev)
			quiet.Reset(drainQuiet)
		case <-quiet.C:
			return
		case <-deadline.C:
			return
		}
	}
}

func (n *Notifier) handle(ev events.Event) {
	if ev.Kind == events.Missed {
		n.opts.Log.Warn().Str("missed", ev.Message).Msg("webhooks: events were lost before they could be queued")
		return
	}
	n.Enqueue(ev)
}

// Enqueue queues an event's deliveries without waiting: a full queue
// drops the delivery (and says so) rather than hold anything up.
func (n *Notifier) Enqueue(ev events.Event) {
	p, ok := payloadFor(ev)
	if !ok {
		return
	}
	for _, h := range n.hooks {
		if h.wants(p) {
			n.enqueue(h, p)
		}
	}
}

func (n *Notifier) enqueue(h *hook, p Payload) {
	body, err := json.Marshal(p)
	if err != nil {
		n.opts.Log.Error().Err(err).Str("event", p.Event).Msg("webhooks: cannot encode the body")
		return
	}
	select {
	case h.queue <- delivery{p: p, body: body}:
	default:
		n.opts.Observe(h.Name, "dropped")
		n.opts.Log.Error().Str("webhook", h.Name).Str("event", p.Event).Str("id", p.ID).
			Msg("webhook queue full (the receiver is down or slow): delivery dropped")
	}
}

// send delivers one webhook's queue in order until it is closed; once ctx
// has ended, each delivery gets one more attempt within flushGrace.
func (n *Notifier) send(ctx context.Context, h *hook) {
	flush, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(flushGrace)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-flush.Done():
			}
		case <-flush.Done():
		}
	}()
	for d := range h.queue {
		n.deliver(ctx, flush, h, d)
	}
}

// deliver makes the attempts of one delivery. ctx ending stops the
// retries; flush ending stops the attempts too.
func (n *Notifier) deliver(ctx, flush context.Context, h *hook, d delivery) {
	log := n.opts.Log.With().Str("webhook", h.Name).Str("event", d.p.Event).Str("id", d.p.ID).Logger()
	if n.delivered(h, d.p) {
		log.Debug().Msg("webhook delivered already")
		return
	}
	wait := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		if flush.Err() != nil {
			n.opts.Observe(h.Name, "failed")
			log.Error().Msg("webhook not delivered: nocobot stopped before it could be")
			return
		}
		retry, after, err := n.attempt(flush, h, d)
		if err == nil {
			n.noteDelivered(h, d.p)
			n.opts.Observe(h.Name, "delivered")
			log.Debug().Int("attempt", attempt).Msg("webhook delivered")
			return
		}
		if !retry || attempt >= h.Attempts || ctx.Err() != nil {
			n.opts.Observe(h.Name, "failed")
			log.Error().Int("attempts", attempt).Str("error", err.Error()).Msg("webhook not delivered; its receiver gets no more attempts for this event")
			return
		}
		n.opts.Observe(h.Name, "retried")
		pause := max(wait, after)
		pause = min(pause, n.opts.MaxBackoff)
		log.Warn().Int("attempt", attempt).Str("error", err.Error()).Dur("retry_in", pause).Msg("webhook attempt failed; trying again")
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		wait = min(wait*2, n.opts.MaxBackoff)
	}
}

// attempt posts the body once. retry says whether another attempt may
// help (a network error, a timeout, 408, 429, 5xx); after is the wait a
// 429 or 503 asked for with Retry-After. Errors never hold the URL, which
// may carry a key.
func (n *Notifier) attempt(ctx context.Context, h *hook, d delivery) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(d.body))
	if err != nil {
		return false, 0, errors.New("the URL cannot be used for a request")
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.opts.UserAgent)
	req.Header.Set(HeaderEvent, d.p.Event)
	req.Header.Set(HeaderDelivery, d.p.ID)
	req.Header.Set(HeaderTimestamp, ts)
	if len(h.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(h.Secret, ts, d.body))
	}
	if h.Authorization != "" {
		req.Header.Set("Authorization", h.Authorization)
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return true, 0, fmt.Errorf("no answer within %s", h.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error names the URL; its cause does not
		}
		return true, 0, fmt.Errorf("cannot reach the receiver: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, bodyLimit))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, 0, nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return true, retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("the receiver answered %s", resp.Status)
	default:
		return false, 0, fmt.Errorf("the receiver refused the delivery: %s (check the webhook's URL and secret)", resp.Status)
	}
}

// retryAfter reads a Retry-After of seconds; 0 when absent or a date.
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(v)
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}

// Sign is the X-Nocobot-Signature value for a timestamp and a body: what
// a receiver computes with the shared secret and compares (in constant
// time) with the header, after checking that the timestamp is recent.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is Sign(secret, timestamp, body); a
// Go receiver can use it as it is.
func Verify(secret []byte, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature))
}
