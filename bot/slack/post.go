package slack

import (
	"context"

	"github.com/slack-go/slack"
)

// ephemeral answers one user in a channel (in thread threadTS, if
// given), visible only to them. It returns Slack's error code, "" when
// the answer was delivered.
func (f *Front) ephemeral(ctx context.Context, channel, user, threadTS, text string) string {
	m, _ := message{text: text, blocks: sections(text, "…")}.fit("…")
	opts := m.options()
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	err := f.calls.do(ctx, "chat.postEphemeral", replyAttempts, func(ctx context.Context) error {
		_, err := f.api.PostEphemeralContext(ctx, channel, user, opts...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("channel", channel).Str("user", user).Msg("could not send an ephemeral reply")
		return slackError(err)
	}
	return ""
}

// say posts a message in a channel for everyone.
func (f *Front) say(ctx context.Context, channel, text string) (string, error) {
	m, _ := message{text: text, blocks: sections(text, "…")}.fit("…")
	var ts string
	err := f.calls.do(ctx, "chat.postMessage", replyAttempts, func(ctx context.Context) error {
		var err error
		_, ts, err = f.api.PostMessageContext(ctx, channel, m.options()...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("channel", channel).Msg("could not post a message")
	}
	return ts, err
}
