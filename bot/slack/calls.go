package slack

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
)

// apiCalls makes Slack API calls with a timeout per attempt, waits out a
// 429 for its Retry-After, and retries transient failures with backoff.
type apiCalls struct {
	log        zerolog.Logger
	timeout    time.Duration
	maxBackoff time.Duration
	count      atomic.Int64 // attempts made, for the measurements
	onError    APIErrorHook // told of each failed attempt (observe.go)
}

// errPermanent marks an error that retrying will not fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// do calls fn until it succeeds, fails for good, ctx ends, or attempts
// (0: no limit) are used up.
func (c *apiCalls) do(ctx context.Context, what string, attempts int, fn func(ctx context.Context) error) error {
	backoff := 500 * time.Millisecond
	for i := 1; ; i++ {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		c.count.Add(1)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.observe(what, err)
		wait := backoff
		var rl *slack.RateLimitedError
		switch {
		case errors.As(err, &rl):
			// Slack says when: earlier is refused again, later is slow.
			wait = max(rl.RetryAfter, 100*time.Millisecond)
		case !transient(err):
			return permanentError{err}
		default:
			backoff = min(backoff*2, c.maxBackoff)
			wait = wait/2 + rand.N(wait/2+1)
		}
		if attempts > 0 && i >= attempts {
			return err
		}
		c.log.Warn().Err(err).Str("call", what).Int("attempt", i).Dur("retry_in", wait).Msg("slack call failed; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// transient reports whether a failed call may succeed when repeated.
func transient(err error) bool {
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		return sc.Code >= 500 || sc.Code == 408 || sc.Code == 429
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return true
		}
		return false
	}
	if certificateError(err) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// Timeouts of an attempt, refused connections, cut-off bodies: the
	// network, not the request.
	return true
}
