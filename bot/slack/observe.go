package slack

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/slack-go/slack"
)

// APIErrorHook is told of every failed Slack API call attempt: the method
// ("chat.update") and a short code for the error (Slack's own, such as
// "channel_not_found" or "ratelimited", else "http_503", "timeout" or
// "network"). It must not block: the call it reports waits for it.
type APIErrorHook func(method, code string)

// ObserveAPIErrors sets the hook; call it before Run.
func (f *Front) ObserveAPIErrors(h APIErrorHook) { f.calls.onError = h }

// observe reports a failed attempt to the hook, if any.
func (c *apiCalls) observe(method string, err error) {
	if c.onError != nil {
		c.onError(method, ErrorCode(err))
	}
}

// slackCode is the shape of Slack's error codes; anything else is not
// used as a label as is.
var slackCode = regexp.MustCompile(`^[a-z0-9_]{1,60}$`)

// ErrorCode reduces a Slack API error to a short, bounded code.
func ErrorCode(err error) string {
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	var se slack.SlackErrorResponse
	switch {
	case errors.As(err, &rl):
		return "ratelimited"
	case errors.As(err, &sc):
		return fmt.Sprintf("http_%d", sc.Code)
	case errors.As(err, &se):
		if slackCode.MatchString(se.Err) {
			return se.Err
		}
		return "other"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "network"
	}
}
