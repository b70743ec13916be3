package slack

import (
	"context"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// runSocket keeps a Socket Mode connection until ctx ends, acking every
// envelope as it arrives and handling it afterwards. A connection that
// fails for good (a revoked token) is retried slowly rather than ending
// the bot: the engine's runs must go on.
func (f *Front) runSocket(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		sm := socketmode.New(f.api, socketmode.OptionLog(discardLog{}))
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sm.RunContext(cctx) }()
		err := f.socketEvents(cctx, sm, done)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		f.log.Error().Err(err).Dur("retry_in", backoff).Msg("slack: socket mode connection ended")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Minute)
	}
	return nil
}

func (f *Front) socketEvents(ctx context.Context, sm *socketmode.Client, done <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			return err
		case ev := <-sm.Events:
			switch ev.Type {
			case socketmode.EventTypeConnected:
				f.log.Info().Msg("slack: socket mode connected")
			case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth, socketmode.EventTypeIncomingError:
				f.log.Warn().Str("event", string(ev.Type)).Msg("slack: socket mode trouble; the client reconnects")
			case socketmode.EventTypeSlashCommand:
				cmd, ok := ev.Data.(slack.SlashCommand)
				f.ack(ctx, sm, ev.Request)
				if ok {
					f.goWork(func(ctx context.Context) { f.handleCommand(ctx, cmd) })
				}
			case socketmode.EventTypeInteractive:
				cb, ok := ev.Data.(slack.InteractionCallback)
				f.ack(ctx, sm, ev.Request)
				if ok {
					f.goWork(func(ctx context.Context) { f.handleInteraction(ctx, cb) })
				}
			case socketmode.EventTypeEventsAPI:
				// Not subscribed to events; ack so Slack does not resend.
				f.ack(ctx, sm, ev.Request)
			}
		}
	}
}

func (f *Front) ack(ctx context.Context, sm *socketmode.Client, req *socketmode.Request) {
	if req == nil || req.EnvelopeID == "" {
		return
	}
	if err := sm.AckCtx(ctx, req.EnvelopeID, nil); err != nil {
		f.log.Warn().Err(err).Msg("slack: could not ack an envelope")
	}
}

// discardLog silences slack-go's own logger; the front logs what matters.
type discardLog struct{}

func (discardLog) Output(int, string) error { return nil }
