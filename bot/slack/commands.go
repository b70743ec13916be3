package slack

import (
	"context"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
)

// replyAttempts bounds retries of a reply to a person: past a minute
// the answer is stale and the audit log holds the outcome anyway.
const replyAttempts = 6

// commandCaller is who sent a slash command, for the dispatcher.
func (f *Front) commandCaller(sc slack.SlashCommand) bot.Caller {
	return bot.Caller{User: sc.UserID, Name: sc.UserName, Via: bot.ViaSlack, Channel: sc.ChannelID, Prefix: f.command, Groups: f.groups}
}

// handleCommand runs one slash command after its ack: the dispatcher
// decides and audits; this renders its reply.
func (f *Front) handleCommand(ctx context.Context, sc slack.SlashCommand) {
	r := f.disp.Command(ctx, f.commandCaller(sc), sc.Text)
	text := replyText(r)
	if r.Started {
		f.bindRun(r.RunID, sc.ChannelID)
		where := ""
		if ch := f.channelForCluster(r.Cluster, sc.ChannelID); ch != sc.ChannelID {
			where = fmt.Sprintf(" in <#%s>", ch)
		}
		text += fmt.Sprintf(" Follow it in its thread%s.", where)
	}
	if !r.Announce.Empty() {
		_, _ = f.say(ctx, f.channelForCluster(r.Cluster, sc.ChannelID), mrkdwn(r.Announce))
	}
	if !r.Quiet() {
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, text)
	}
}

// channelForCluster is where a cluster's runs are rendered: its own
// channel, else the one given.
func (f *Front) channelForCluster(cluster, fallback string) string {
	if cl, ok := f.cfg.Cluster(cluster); ok && cl.Channel != "" {
		return cl.Channel
	}
	return fallback
}

// ephemeral answers one user in a channel, visible only to them.
func (f *Front) ephemeral(ctx context.Context, channel, user, text string, blocks ...slack.Block) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	err := f.calls.do(ctx, "chat.postEphemeral", replyAttempts, func(ctx context.Context) error {
		_, err := f.api.PostEphemeralContext(ctx, channel, user, opts...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("channel", channel).Str("user", user).Msg("could not send an ephemeral reply")
	}
}

// say posts a message in a channel for everyone.
func (f *Front) say(ctx context.Context, channel, text string, blocks ...slack.Block) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	var ts string
	err := f.calls.do(ctx, "chat.postMessage", replyAttempts, func(ctx context.Context) error {
		var err error
		_, ts, err = f.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("channel", channel).Msg("could not post a message")
	}
	return ts, err
}
