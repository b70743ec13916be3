package slack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/schedule"
	"github.com/nocobot/nocobot/store"
)

// handleInteraction handles a button click after its ack: the
// dispatcher decides and audits; this renders its reply.
func (f *Front) handleInteraction(ctx context.Context, cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		f.log.Debug().Str("type", string(cb.Type)).Str("user", cb.User.ID).Msg("slack: ignored an interaction that is not a block action")
		return
	}
	who := bot.Caller{User: cb.User.ID, Name: cb.User.Name, Via: bot.ViaSlack, Channel: cb.Channel.ID, Prefix: f.command, Groups: f.groups, Channels: channels{f.cfg}}
	// A refusal lands where the button was pressed: in its thread.
	threadTS := cb.Container.ThreadTs
	if threadTS == "" {
		threadTS = cb.Message.ThreadTimestamp
	}
	for _, a := range cb.ActionCallback.BlockActions {
		var r bot.Reply
		switch {
		case strings.HasPrefix(a.ActionID, actionPrefixCP):
			r = f.checkpointClick(ctx, who, store.Action(strings.TrimPrefix(a.ActionID, actionPrefixCP)), a.Value)
		case a.ActionID == actionWindowSkip || a.ActionID == actionWindowStart:
			r = f.windowClick(ctx, cb, who, a.ActionID, a.Value)
		default:
			r = f.disp.Refuse(ctx, who, "button "+a.ActionID, "I don't know that button.")
		}
		if r.Outcome.Kind != bot.OK && !r.Quiet() {
			if code := f.ephemeral(ctx, cb.Channel.ID, cb.User.ID, threadTS, replyText(r)); code != "" {
				f.respond(ctx, cb.ResponseURL, replyText(r))
			}
		}
	}
}

func (f *Front) checkpointClick(ctx context.Context, who bot.Caller, action store.Action, value string) bot.Reply {
	runID, cpID, ok := parseCPValue(value)
	said := fmt.Sprintf("button %s run %s checkpoint %s", action, runID, cpID)
	if !ok {
		return f.disp.Refuse(ctx, who, said, "That button carries no run; it is not one of mine.")
	}
	// A decision is taken only in the run's own thread: a payload that
	// names another channel, even one the bot obeys, is not a click
	// on this run's buttons.
	if ch, _ := f.threadOf(ctx, runID); ch != who.Channel && !f.shownIn(runID, who.Channel) {
		msg := fmt.Sprintf("That button is not in run %s's thread; decide in its thread.", runID)
		if ch != "" {
			msg = fmt.Sprintf("That button is not in run %s's thread; decide in its thread in <#%s>.", runID, ch)
		}
		return f.disp.Refuse(ctx, who, said, msg)
	}
	r := f.disp.Decide(ctx, who, bot.Answer{RunID: runID, Checkpoint: cpID, Action: action, Said: said})
	if r.Outcome.Kind == bot.OK && r.Decision != nil {
		// Show the decision now; the engine's own event follows when it acts.
		f.mu.Lock()
		t := f.threads[runID]
		f.mu.Unlock()
		if t != nil {
			t.decided(*r.Decision)
		}
	}
	return r
}

// shownIn: run's open question was posted in channel while its own
// channel refused the bot.
func (f *Front) shownIn(runID, channel string) bool {
	f.mu.Lock()
	t := f.threads[runID]
	f.mu.Unlock()
	return t != nil && t.awayIn(channel)
}

func (f *Front) windowClick(ctx context.Context, cb slack.InteractionCallback, who bot.Caller, actionID, value string) bot.Reply {
	id, start, ok := parseWindowValue(value)
	verb := "skip"
	if actionID == actionWindowStart {
		verb = "start"
	}
	said := fmt.Sprintf("button window %s %s at %s", verb, id, start.UTC().Format(time.RFC3339))
	if !ok {
		return f.disp.Refuse(ctx, who, said, "That button carries no window; it is not one of mine.")
	}
	if w, err := f.eng.Window(ctx, id); err == nil {
		if ch := f.windowChannel(w.Cluster); ch != who.Channel {
			return f.disp.Refuse(ctx, who, said, fmt.Sprintf("That button is not in window %s's channel; use the one in <#%s>.", id, ch))
		}
	}
	r := f.disp.DecideWindow(ctx, who, bot.WindowAnswer{ID: id, Start: start, Approve: verb == "start", Said: said})
	if r.Outcome.Kind != bot.OK || r.Window == nil {
		return r
	}
	text, blocks := renderWindow(*r.Window, start, "", mrkdwn(r.Text))
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	if ts != "" {
		m, _ := message{text: text, blocks: blocks}.fit(fmt.Sprintf("…\n_Cut to fit Slack: `%s schedule list` shows the window in full._", f.command))
		err := f.calls.do(ctx, "chat.update", replyAttempts, func(ctx context.Context) error {
			_, _, _, err := f.api.UpdateMessageContext(ctx, cb.Channel.ID, ts, m.options()...)
			return err
		})
		if err != nil {
			f.log.Warn().Err(err).Msg("slack: could not update the window message")
		}
	}
	return r
}

// windowEvent posts a maintenance window event in the cluster's channel.
// Announced gets a Skip button, approval a Start button; the others
// (started, skipped, missed, overrun) are plain messages.
func (f *Front) windowEvent(ctx context.Context, ev events.Event) {
	w := ev.Window.Window
	ch := f.windowChannel(w.Cluster)
	if ch == "" {
		f.log.Warn().Str("window", w.ID).Msg("slack: no channel for a window event")
		return
	}
	button := ""
	switch ev.Kind {
	case events.WindowAnnounced:
		button = actionWindowSkip
	case events.WindowApproval:
		button = actionWindowStart
	}
	text, blocks := renderWindow(w, ev.Window.Start, button, schedule.Text(ev, schedule.Format{Who: mention, When: slackDate}))
	m, _ := message{text: text, blocks: blocks}.fit(fmt.Sprintf("…\n_Cut to fit Slack: `%s schedule list` or `nocobot schedule list` shows the window in full._", f.command))
	err := f.calls.do(ctx, "chat.postMessage", 20, func(ctx context.Context) error {
		_, _, err := f.api.PostMessageContext(ctx, ch, m.options()...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("window", w.ID).Msg("slack: could not post a window event")
	}
}

// windowChannel is where a cluster's window events go: its channel, or
// the first of access.slack.channels.
func (f *Front) windowChannel(cluster string) string {
	ch := f.channelForCluster(cluster, "")
	if ch == "" && len(f.cfg.Access.Slack.Channels) > 0 {
		ch = f.cfg.Access.Slack.Channels[0]
	}
	return ch
}

// renderWindow shows a window event; button is the action offered (or
// none), line what happened.
func renderWindow(w store.Window, start time.Time, button, line string) (string, []slack.Block) {
	head := fmt.Sprintf(":calendar: *Maintenance window %s* on %s: %s", w.ID, w.Cluster, w.Command)
	if !start.IsZero() {
		head += " — " + slackDate(start, w.TZ)
	}
	text := head
	if line != "" {
		text += "\n" + line
	}
	blocks := []slack.Block{section(text)}
	if button != "" {
		label, style := "Skip this one", slack.StyleDanger
		if button == actionWindowStart {
			label, style = "Start", slack.StylePrimary
		}
		b := slack.NewButtonBlockElement(button, fmt.Sprintf("%s|%d", w.ID, start.Unix()),
			slack.NewTextBlockObject(slack.PlainTextType, label, false, false)).WithStyle(style)
		blocks = append(blocks, slack.NewActionBlock(blockWindowActions, b))
	}
	return text, blocks
}
