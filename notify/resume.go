package notify

import (
	"context"
	"errors"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// Store is the part of nocobot's store that makes run.waiting survive a
// restart: each delivered one is noted, and at start every run still
// waiting whose question no note says was delivered is sent again. So a
// crash between a checkpoint opening and its delivery, or a receiver
// down for longer than the retries, is made good by the next start of
// any nocobot on the store. Other events are not resent.
type Store interface {
	UnfinishedRuns(ctx context.Context) ([]store.Run, error)
	GetNote(ctx context.Context, scope, key string) (string, error)
	PutNote(ctx context.Context, scope, key, value string) error
}

const (
	// noteScope holds one note per run.waiting delivered, keyed by
	// webhook and delivery id.
	noteScope = "webhook-delivered"
	// storeTimeout bounds each store call the notifier makes.
	storeTimeout = 10 * time.Second
)

func noteKey(webhook, id string) string { return webhook + " " + id }

// noteDelivered records a delivered run.waiting; a failure to record it
// means at worst one more delivery of the same id after a restart.
func (n *Notifier) noteDelivered(h *hook, p Payload) {
	if n.opts.Store == nil || p.Event != RunWaiting {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := n.opts.Store.PutNote(ctx, noteScope, noteKey(h.Name, p.ID), time.Now().UTC().Format(time.RFC3339)); err != nil {
		n.opts.Log.Warn().Err(err).Str("webhook", h.Name).Str("id", p.ID).Msg("webhook delivered but not noted in the store: a restart may send it again")
	}
}

// delivered reports whether a run.waiting was noted delivered already:
// the engine republishes a question when a process takes its run over,
// and the resend may have queued it too.
func (n *Notifier) delivered(h *hook, p Payload) bool {
	if n.opts.Store == nil || p.Event != RunWaiting {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	_, err := n.opts.Store.GetNote(ctx, noteScope, noteKey(h.Name, p.ID))
	return err == nil
}

// resendWaiting queues, ResendAfter after the start, run.waiting for
// every waiting run whose question was not delivered to a webhook that
// wants it. The pause lets the process that takes a run over deliver the
// question it republishes first, so that it is not sent twice.
func (n *Notifier) resendWaiting(ctx context.Context) {
	if n.opts.Store == nil || len(n.hooks) == 0 {
		return
	}
	t := time.NewTimer(n.opts.ResendAfter)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return
	}
	c, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	runs, err := n.opts.Store.UnfinishedRuns(c)
	if err != nil {
		n.opts.Log.Warn().Err(err).Msg("webhooks: cannot read the waiting runs: questions not delivered before the restart are not resent")
		return
	}
	for _, r := range runs {
		if r.Checkpoint == nil || (r.State != store.StateWaiting && r.State != store.StateFailed) {
			continue
		}
		p, ok := payloadFor(events.Event{Kind: events.Checkpoint, Run: r, Step: r.Checkpoint.Step, At: r.Checkpoint.Opened})
		if !ok {
			continue
		}
		for _, h := range n.hooks {
			if !h.wants(p) {
				continue
			}
			_, err := n.opts.Store.GetNote(c, noteScope, noteKey(h.Name, p.ID))
			switch {
			case errors.Is(err, store.ErrNotFound):
				n.opts.Log.Info().Str("webhook", h.Name).Str("id", p.ID).Msg("webhook: resending a question not delivered before the restart")
				n.enqueue(h, p)
			case err != nil:
				n.opts.Log.Warn().Err(err).Str("webhook", h.Name).Str("id", p.ID).Msg("webhooks: cannot read whether a question was delivered; not resent")
			}
		}
	}
}
