package slack

import (
	"context"
	"fmt"
	"time"

	"github.com/slack-go/slack"
)

type sendResult int

const (
	sendDone    sendResult = iota // sent, or given up on this message
	sendStop                      // the front stops
	sendParked                    // the channel refuses the bot
	sendRebuilt                   // the thread starts again under a new root
)

// send posts or edits one message. Slack's refusals are answered: a
// channel that refuses the bot parks the thread; a message Slack will
// not take is sent again in its plainest form; a message that cannot
// be edited is posted anew; a thread that cannot be added to is posted
// again under a new root, saying why.
func (t *thread) send(ctx context.Context, channel string, s, root *slot) sendResult {
	f := t.f
	var content string
	var cut bool
	var full string
	plain := false
	// Each attempt sends the content as it is then: after an outage the
	// thread catches up with the latest state, not the first.
	current := func() []slack.MsgOption {
		t.mu.Lock()
		text, blocks := t.render(s.key)
		t.mu.Unlock()
		content, full = contentKey(text, blocks), text
		m := message{text: text, blocks: blocks}
		if plain {
			m = plainMessage(text, blocks)
		}
		m, cut = m.fit(t.cutTail(s, root))
		return m.options()
	}
	var extra []slack.MsgOption
	if s != root {
		extra = append(extra, slack.MsgOptionTS(root.ts))
		if s.broadcast {
			extra = append(extra, slack.MsgOptionBroadcast())
		}
	}
	for {
		var ts string
		var err error
		if s.ts != "" {
			err = f.calls.do(ctx, "chat.update", 0, func(ctx context.Context) error {
				_, _, _, err := f.api.UpdateMessageContext(ctx, channel, s.ts, current()...)
				return err
			})
			ts = s.ts
		} else {
			err = f.calls.do(ctx, "chat.postMessage", 0, func(ctx context.Context) error {
				var err error
				// A post under way finishes even while the front stops:
				// cut off, Slack may show it while the bot forgets it,
				// and a restarted bot would post it again.
				c, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.opts.CallTimeout)
				defer cancel()
				_, ts, err = f.api.PostMessageContext(c, channel, append(current(), extra...)...)
				return err
			})
		}
		// A message posted is recorded even while the front stops: a
		// restarted bot must edit it, not post it again.
		if err == nil {
			fresh := s.ts == ""
			t.mu.Lock()
			s.ts, s.sent, s.lastEdit = ts, content, time.Now()
			t.parkedSince, t.parkTries, t.parkGaveUp = time.Time{}, 0, false
			t.mu.Unlock()
			if fresh {
				t.save(ctx)
			}
			t.mu.Lock()
			phase := t.phase(s.key)
			t.mu.Unlock()
			if cut && s.uploaded != phase {
				s.uploaded = phase
				t.upload(ctx, channel, root.ts, s, full)
			}
			return sendDone
		}
		if ctx.Err() != nil {
			return sendStop
		}
		code := slackError(err)
		log := f.log.Warn().Err(err).Str("run", t.runID).Str("channel", channel).Str("message", s.key)
		switch {
		case channelRefuses(code):
			log.Msg("slack: the channel refuses the bot; the thread waits for an invitation")
			t.park(code)
			return sendParked
		case !plain && messageRefused(code):
			log.Msg("slack: message refused; sending its plainest form")
			plain = true
			continue
		case s.ts != "" && s != root:
			// Deleted, or too old to edit: post it anew in the thread.
			log.Msg("slack: could not edit a thread message; posting it again")
			t.mu.Lock()
			s.ts, s.sent = "", ""
			t.mu.Unlock()
			continue
		}
		if t.rebuild(fmt.Sprintf("Slack refused a message of the old one (%s).", code)) {
			log.Msg("slack: rebuilding the thread under a new root")
			return sendRebuilt
		}
		log.Msg("slack: could not post a thread message; giving up on it")
		t.mu.Lock()
		s.dropped = true
		t.mu.Unlock()
		return sendDone
	}
}

// maxRebuilds bounds how often one run's thread starts again.
const maxRebuilds = 3

// rebuild posts the whole thread again under a new root that says why.
func (t *thread) rebuild(why string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rebuilds >= maxRebuilds {
		return false
	}
	t.rebuilds++
	t.rebuilt = why
	t.known = map[string]string{}
	for _, s := range t.slots {
		s.ts, s.sent, s.dropped, s.uploaded = "", "", false, ""
	}
	return true
}

// rootPosted returns the root's ts once posted, and why the channel
// refuses the thread, if it does.
func (t *thread) rootPosted() (channel, ts, parked string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.byKey["root"]; r != nil {
		ts = r.ts
	}
	return t.channel, ts, t.parked
}
