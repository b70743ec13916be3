package slack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// runSocket keeps a Socket Mode connection until ctx ends, acking every
// envelope as it arrives and handling it afterwards. A lost connection
// is retried; a token Slack refuses or a certificate that cannot be
// trusted ends it with an error naming the token: retrying cannot help.
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
		f.socket.set(false, "connection ended: "+oneLine(err), time.Now())
		if fatal := f.socketFatal(err); fatal != nil {
			return fatal
		}
		f.log.Error().Str("error", oneLine(err)).Dur("retry_in", backoff).Msg("slack: socket mode connection ended")
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
			case socketmode.EventTypeConnecting:
				f.socket.connecting(time.Now())
			case socketmode.EventTypeConnected:
				f.socket.set(true, "", time.Now())
				f.log.Info().Msg("slack: socket mode connected")
			case socketmode.EventTypeDisconnect:
				f.socket.set(false, "Slack asked to reconnect", time.Now())
			case socketmode.EventTypeInvalidAuth:
				return errInvalidAuth
			case socketmode.EventTypeConnectionError:
				why := "cannot connect"
				if ce, ok := ev.Data.(*slack.ConnectionErrorEvent); ok && ce.ErrorObj != nil {
					if certificateError(ce.ErrorObj) {
						return ce.ErrorObj
					}
					why += ": " + oneLine(ce.ErrorObj)
					// oneLine: the socket URL's ticket stays out of the log.
					f.log.Warn().Str("error", oneLine(ce.ErrorObj)).Msg("slack: socket mode cannot connect; the client retries")
				}
				f.socket.set(false, why, time.Now())
			case socketmode.EventTypeIncomingError:
				f.log.Warn().Str("event", string(ev.Type)).Msg("slack: socket mode trouble; the client reconnects")
			case socketmode.EventTypeSlashCommand:
				cmd, ok := ev.Data.(slack.SlashCommand)
				f.ack(ctx, sm, ev.Request)
				if !ok || !f.firstEnvelope(ctx, ev.Request) {
					continue
				}
				if err := f.checkCommand(cmd); err != nil {
					f.log.Warn().Str("reason", err.Error()).Msg("slack: refused a slash command envelope")
					continue
				}
				f.goWork(func(ctx context.Context) { f.handleCommand(ctx, cmd) })
			case socketmode.EventTypeInteractive:
				cb, ok := ev.Data.(slack.InteractionCallback)
				f.ack(ctx, sm, ev.Request)
				if !ok || !f.firstEnvelope(ctx, ev.Request) {
					continue
				}
				if err := f.checkInteraction(cb); err != nil {
					f.log.Warn().Str("reason", err.Error()).Msg("slack: refused an interactive envelope")
					continue
				}
				f.goWork(func(ctx context.Context) { f.handleInteraction(ctx, cb) })
			case socketmode.EventTypeEventsAPI:
				e, ok := ev.Data.(slackevents.EventsAPIEvent)
				f.ack(ctx, sm, ev.Request)
				if ok && f.firstEnvelope(ctx, ev.Request) {
					f.goWork(func(ctx context.Context) { f.handleEvent(ctx, e) })
				}
			}
		}
	}
}

// errInvalidAuth: Socket Mode was refused the app-level token.
var errInvalidAuth = errors.New("invalid_auth")

// socketFatal turns the end of a connection that retrying cannot mend
// into the error that stops serve; nil lets runSocket reconnect.
func (f *Front) socketFatal(err error) error {
	if err == nil {
		return nil
	}
	name := tokenName("slack.app_token_env", f.cfg.Slack.AppTokenEnv)
	if certificateError(err) {
		return fmt.Errorf("%s: socket mode: the TLS certificate of the Slack API (%s) is not trusted: %w", name, f.apiURL(), err)
	}
	if code := slackError(err); authFails(code) {
		return fmt.Errorf("%s: socket mode: Slack refused the app-level token: %s", name, explainRefusal(code))
	}
	return nil
}

// firstEnvelope: an envelope Slack delivers again (to this process or
// another replica) is handled once.
func (f *Front) firstEnvelope(ctx context.Context, req *socketmode.Request) bool {
	if req == nil || req.EnvelopeID == "" {
		return true
	}
	first, err := f.seenOnce(ctx, "slack-envelope:"+req.EnvelopeID)
	if err != nil {
		f.log.Error().Err(err).Msg("slack: the replay guard cannot be checked; dropping an envelope")
		return false
	}
	if !first {
		f.log.Warn().Str("envelope", req.EnvelopeID).Msg("slack: an envelope delivered twice; handled once")
	}
	return first
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
