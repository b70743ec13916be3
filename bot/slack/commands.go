package slack

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
)

// replyAttempts bounds retries of a reply to a person: past a minute
// the answer is stale and the audit log holds the outcome anyway.
const replyAttempts = 6

// Waits of a started run's answer: the thread's root usually follows
// within a second; the answer says where it is after ackWait at most,
// and a follow-up links it once the bot may post there, for as long as
// the command's response_url works.
const (
	ackWait       = 3 * time.Second
	followUpWait  = 30 * time.Minute
	followUpEvery = 500 * time.Millisecond
)

// commandCaller is who sent a slash command, for the dispatcher.
func (f *Front) commandCaller(sc slack.SlashCommand) bot.Caller {
	return bot.Caller{User: sc.UserID, Name: sc.UserName, Via: bot.ViaSlack, Channel: sc.ChannelID, Prefix: f.command, Groups: f.groups, Channels: channels{f.cfg}}
}

// handleCommand runs one slash command after its ack: the dispatcher
// decides and audits; this renders its reply. The person always gets
// an answer: in the channel, or through the command's response_url
// when the bot cannot post there.
func (f *Front) handleCommand(ctx context.Context, sc slack.SlashCommand) {
	r := f.disp.Command(ctx, f.commandCaller(sc), sc.Text)
	if r.Started {
		f.bindRun(r.RunID, sc.ChannelID)
	}
	if !r.Announce.Empty() {
		_, _ = f.say(ctx, f.channelForCluster(r.Cluster, sc.ChannelID), mrkdwn(r.Announce))
	}
	if r.Quiet() {
		return
	}
	text := replyText(r)
	posted := true
	if r.Started {
		var line string
		line, posted = f.threadAnswer(ctx, r.RunID)
		text += " " + line
	}
	f.answer(ctx, sc, "", text)
	if !posted {
		f.goWork(func(ctx context.Context) { f.followUp(ctx, sc, r.RunID) })
	}
}

// threadAnswer waits briefly for a new run's thread and says where it
// is: a link, or why it is not there yet. posted reports a link.
func (f *Front) threadAnswer(ctx context.Context, runID string) (line string, posted bool) {
	deadline := time.Now().Add(ackWait)
	for {
		ch, ts, parked := f.threadState(runID)
		switch {
		case ts != "":
			if link := f.permalink(ctx, ch, ts); link != "" {
				return fmt.Sprintf("Its thread: <%s|run %s in #%s>.", link, runID, ch), true
			}
			return fmt.Sprintf("Follow it in its thread in <#%s>.", ch), true
		case parked != "":
			return fmt.Sprintf("I cannot post its thread in <#%s> (%s): invite me with `/invite @%s`; the thread appears there once I am in.", ch, parked, f.botName()), false
		case time.Now().After(deadline) || ctx.Err() != nil:
			if ch != "" && ch != "-" {
				return fmt.Sprintf("Its thread appears in <#%s> in a moment.", ch), false
			}
			return "Its thread appears in a moment.", false
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// followUp links a run's thread once it is posted (after an invitation).
func (f *Front) followUp(ctx context.Context, sc slack.SlashCommand, runID string) {
	deadline := time.Now().Add(followUpWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(followUpEvery):
		}
		// The thread may be posted and done already: its note says where.
		ch, ts := f.threadOf(ctx, runID)
		if ts == "" {
			continue
		}
		line := fmt.Sprintf("Run %s's thread is up in <#%s>.", runID, ch)
		if link := f.permalink(ctx, ch, ts); link != "" {
			line = fmt.Sprintf("Run %s's thread is up: <%s|open it>.", runID, link)
		}
		f.answer(ctx, sc, "", line)
		return
	}
}

// threadState is where a run's thread stands: its channel, its root's
// ts once posted, and why the channel refuses it, if it does.
func (f *Front) threadState(runID string) (channel, ts, parked string) {
	f.mu.Lock()
	t := f.threads[runID]
	f.mu.Unlock()
	if t == nil {
		return "", "", ""
	}
	return t.rootPosted()
}

func (f *Front) botName() string {
	if n := f.botNameV.Load(); n != "" {
		return n
	}
	return "nocobot"
}

// answer tells the person who typed sc something, visible only to them:
// an ephemeral message (in the thread threadTS, if given), or, when the
// bot cannot post in the channel, through the command's response_url.
func (f *Front) answer(ctx context.Context, sc slack.SlashCommand, threadTS, text string) {
	code := f.ephemeral(ctx, sc.ChannelID, sc.UserID, threadTS, text)
	if code == "" {
		return
	}
	if channelRefuses(code) {
		text += fmt.Sprintf("\n_I am not in this channel, so only you see this: invite me with `/invite @%s`._", f.botName())
	}
	if !f.respond(ctx, sc.ResponseURL, text) {
		f.log.Error().Str("user", sc.UserID).Str("channel", sc.ChannelID).Str("slack_error", code).Msg("slack: could not answer a command in any way")
	}
}

// respond answers through a command's response_url.
func (f *Front) respond(ctx context.Context, responseURL, text string) bool {
	if responseURL == "" {
		return false
	}
	if !f.trustedResponseURL(responseURL) {
		f.log.Warn().Msg("slack: a response_url that is not Slack's; not answering through it")
		return false
	}
	m, _ := message{text: text, blocks: sections(text, "…")}.fit("…")
	msg := &slack.WebhookMessage{Text: m.text, Blocks: &slack.Blocks{BlockSet: m.blocks}, ResponseType: slack.ResponseTypeEphemeral}
	client := f.opts.HTTPClient
	if client == nil {
		client = &http.Client{}
	}
	err := f.calls.do(ctx, "response_url", replyAttempts, func(ctx context.Context) error {
		return slack.PostWebhookCustomHTTPContext(ctx, responseURL, client, msg)
	})
	if err != nil {
		f.log.Warn().Err(err).Msg("slack: could not answer through the response_url")
		return false
	}
	return true
}

// trustedResponseURL: an https Slack URL, or on the configured API's
// host (GovSlack, a proxy, tests). Anything else would send the answer
// where a forged payload points.
func (f *Front) trustedResponseURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" && (host == "slack.com" || strings.HasSuffix(host, ".slack.com") || host == "slack-gov.com" || strings.HasSuffix(host, ".slack-gov.com")) {
		return true
	}
	api, err := url.Parse(f.apiURL())
	return err == nil && api.Scheme == u.Scheme && strings.EqualFold(api.Host, u.Host)
}

// channelForCluster is where a cluster's runs are rendered: its own
// channel, else the one given.
func (f *Front) channelForCluster(cluster, fallback string) string {
	if cl, ok := f.cfg.Cluster(cluster); ok && cl.Slack.Channel != "" {
		return cl.Slack.Channel
	}
	return fallback
}
