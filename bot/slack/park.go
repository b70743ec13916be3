package slack

import (
	"context"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/format"
)

// A thread whose channel refuses the bot (not_in_channel) is parked:
// tried again after ParkRetry, then after waits that double up to
// ParkMaxRetry, and no more once it has been parked ParkGiveUp, when a
// note in access.slack.channels says so. An invitation of the bot tries it at
// once, whatever the wait.

// park holds the thread until the bot may post in its channel.
func (t *thread) park(reason string) {
	now := t.f.opts.Clock.Now()
	t.mu.Lock()
	if t.parkedSince.IsZero() {
		t.parkedSince, t.parkTries = now, 0
	} else {
		t.parkTries++
	}
	t.parked, t.parkedAt = reason, now
	t.mu.Unlock()
}

// unpark tries a parked thread again now (the bot was invited).
func (t *thread) unpark(channel string) {
	t.mu.Lock()
	hit := t.parked != "" && (channel == "" || t.channel == channel)
	if hit {
		t.parkedAt = time.Time{}
	}
	t.mu.Unlock()
	if hit {
		t.poke()
	}
}

// parkDue is when a parked thread is tried again (zero: never, it gave
// up); the caller holds mu.
func (t *thread) parkDue() time.Time {
	o := t.f.opts
	if t.parkGaveUp {
		return time.Time{}
	}
	wait := o.ParkRetry
	for i := 0; i < t.parkTries && wait < o.ParkMaxRetry; i++ {
		wait *= 2
	}
	due := t.parkedAt.Add(min(wait, o.ParkMaxRetry))
	// The last try is at the limit, not an hour past it.
	if limit := t.parkedSince.Add(o.ParkGiveUp); due.After(limit) {
		due = limit
	}
	return due
}

// stillParked reports whether the thread waits on; if not, it is
// unparked to be tried now.
func (t *thread) stillParked() bool {
	now := t.f.opts.Clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parked == "" {
		return false
	}
	if !t.parkedAt.IsZero() {
		if due := t.parkDue(); due.IsZero() || now.Before(due) {
			return true
		}
	}
	t.parked = ""
	return false
}

// parkedWait keeps the parked thread's checkpoints shown elsewhere and
// returns the timer of its next try: nil once it gave up (only an
// invitation tries it then), when it gives up here.
func (t *thread) parkedWait(ctx context.Context) <-chan time.Time {
	f := t.f
	t.showAway(ctx)
	now := f.opts.Clock.Now()
	t.mu.Lock()
	invited := t.parkedAt.IsZero()
	giveUp := !t.parkGaveUp && !invited && !now.Before(t.parkedSince.Add(f.opts.ParkGiveUp))
	if giveUp {
		t.parkGaveUp = true
	}
	due := t.parkDue()
	t.mu.Unlock()
	switch {
	case invited:
		return f.opts.Clock.After(0)
	case giveUp:
		t.gaveUp(ctx)
		return nil
	case due.IsZero():
		return nil
	}
	return f.opts.Clock.After(max(due.Sub(now), time.Millisecond))
}

// gaveUp logs once that a parked thread is no longer tried and leaves a
// note where the operators read: the first of access.slack.channels that is
// not the run's.
func (t *thread) gaveUp(ctx context.Context) {
	f := t.f
	t.mu.Lock()
	channel, why, cluster, since := t.channel, t.parked, t.view.Run.Cluster, t.parkedSince
	t.mu.Unlock()
	parkedFor := f.opts.Clock.Now().Sub(since).Round(time.Minute)
	f.log.Warn().Str("run", t.runID).Str("channel", channel).Str("reason", why).Dur("parked_for", parkedFor).
		Msg("slack: the run's channel still refuses the bot; its thread is no longer retried until the bot is invited")
	ops := f.awayChannel(channel)
	if ops == "" {
		return
	}
	text := fmt.Sprintf(":warning: Run `%s` on %s: its thread could not be posted in <#%s> for %s (%s), and I have stopped trying. Invite me with `/invite @%s` and it appears there at once; `nocobot attach %s` follows the run at a terminal.",
		t.runID, cluster, channel, format.Duration(parkedFor), why, f.botName(), t.runID)
	text, blocks := one(text)
	err := f.calls.do(ctx, "chat.postMessage", replyAttempts, func(ctx context.Context) error {
		_, _, err := f.api.PostMessageContext(ctx, ops, message{text: text, blocks: blocks}.options()...)
		return err
	})
	if err != nil {
		f.log.Error().Err(err).Str("run", t.runID).Str("channel", ops).Msg("slack: could not say that a thread is no longer retried")
	}
}
