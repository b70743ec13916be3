package slack

import (
	"context"
	"fmt"

	"github.com/slack-go/slack"
)

// away is an open checkpoint shown in another channel while the run's
// own channel refuses the bot: its deciders must see its buttons
// somewhere. The message is kept current (a decision replaces them).
type away struct {
	channel, ts, sent, why string
}

// awayChannel is where a checkpoint goes while ch refuses the bot: the
// first of access.slack.channels that is not ch.
func (f *Front) awayChannel(ch string) string {
	for _, c := range f.cfg.Access.Slack.Channels {
		if c != ch {
			return c
		}
	}
	return ""
}

// awayIn reports whether the thread's question was posted in channel.
func (t *thread) awayIn(channel string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range t.away {
		if a.channel == channel {
			return true
		}
	}
	return false
}

// awayMessage renders checkpoint id as shown elsewhere; the caller holds mu.
func (t *thread) awayMessage(id, why string) message {
	q, r := t.view.Questions[id], t.view.Run
	text, blocks := renderCheckpoint(r, q, t.f.decidersLine(r, q.Checkpoint))
	head := fmt.Sprintf(":warning: Run `%s` on %s cannot post its thread in <#%s> (%s): invite me there with `/invite @%s`. Its open question, meanwhile:",
		t.runID, r.Cluster, t.channel, why, t.f.botName())
	m, _ := message{text: head + "\n" + text, blocks: append([]slack.Block{section(head)}, blocks...)}.
		fit(fmt.Sprintf("…\n_Cut to fit Slack: `nocobot attach %s` shows the run in full at a terminal._", t.runID))
	return m
}

// showAway posts the open checkpoints of a parked thread in another
// channel, and keeps the messages posted so current.
func (t *thread) showAway(ctx context.Context) {
	f := t.f
	t.mu.Lock()
	parked := t.parked
	ids := t.view.QuestionIDs()
	t.mu.Unlock()
	for _, id := range ids {
		t.mu.Lock()
		q, a := t.view.Questions[id], t.away[id]
		open := q.Open()
		post := a == nil && parked != "" && open
		var m message
		switch {
		case post:
			m = t.awayMessage(id, parked)
		case a != nil:
			m = t.awayMessage(id, a.why)
		}
		channel := t.channel
		t.mu.Unlock()
		if !post && a == nil {
			continue
		}
		content := contentKey(m.text, m.blocks)
		if post {
			ch := f.awayChannel(channel)
			if ch == "" {
				continue
			}
			var ts string
			err := f.calls.do(ctx, "chat.postMessage", replyAttempts, func(ctx context.Context) error {
				var err error
				_, ts, err = f.api.PostMessageContext(ctx, ch, m.options()...)
				return err
			})
			if err != nil {
				f.log.Error().Err(err).Str("run", t.runID).Str("channel", ch).Msg("slack: could not show a checkpoint anywhere")
				continue
			}
			f.log.Warn().Str("run", t.runID).Str("channel", ch).Msg("slack: the run's channel refuses the bot; its checkpoint is shown in another channel")
			t.mu.Lock()
			t.away[id] = &away{channel: ch, ts: ts, sent: content, why: parked}
			t.mu.Unlock()
			continue
		}
		if content == a.sent {
			continue
		}
		err := f.calls.do(ctx, "chat.update", replyAttempts, func(ctx context.Context) error {
			_, _, _, err := f.api.UpdateMessageContext(ctx, a.channel, a.ts, m.options()...)
			return err
		})
		if err != nil {
			f.log.Warn().Err(err).Str("run", t.runID).Msg("slack: could not update a checkpoint shown in another channel")
		}
		a.sent = content
	}
}
