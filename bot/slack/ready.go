package slack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

const (
	// readyEvery: Slack is asked at most this often; /readyz is polled
	// every few seconds and Slack's rate limits are per method.
	readyEvery = 30 * time.Second
	// socketGrace is how long a Socket Mode connection may be down before
	// the front is not ready: Slack asks clients to reconnect now and then.
	socketGrace = 30 * time.Second
)

// Name is the front's name in readiness and logs.
func (f *Front) Name() string { return "slack" }

// Ready fails while the Socket Mode connection has been down for longer
// than the grace (Options.SocketGrace), and asks Slack whether the bot
// token works (auth.test), at most every 30 s; between asks it answers
// the last result.
func (f *Front) Ready(ctx context.Context) error {
	if err := socketCheck(f.SocketDown, f.opts.SocketGrace, time.Now()); err != nil {
		return err
	}
	return f.auth(ctx)
}

// socketCheck is the socket's part of readiness at now.
func socketCheck(socketDown func() (time.Time, string), grace time.Duration, now time.Time) error {
	since, why := socketDown()
	if since.IsZero() {
		return nil
	}
	if d := now.Sub(since); d >= grace {
		return fmt.Errorf("socket mode down for %s: %s", d.Round(time.Second), why)
	}
	return nil
}

// authCheck asks auth.test at most every readyEvery.
func authCheck(api *slack.Client) func(context.Context) error {
	var (
		mu   sync.Mutex
		at   time.Time
		last error
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < readyEvery {
			return last
		}
		_, err := api.AuthTestContext(ctx)
		if err != nil {
			err = fmt.Errorf("auth.test: %s", errorText(err))
		}
		at, last = time.Now(), err
		return last
	}
}

// errorText is a Slack error without anything a token could be in.
func errorText(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return oneLine(err)
}
