package slack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
)

// Paths of the HTTP endpoints (the app manifest names them).
const (
	PathCommands      = "/slack/commands"
	PathInteractivity = "/slack/interactivity"
	PathEvents        = "/slack/events"
)

const maxBody = 256 << 10

// Handler serves Slack's slash command, interactivity and event requests,
// verified with the signing secret. It answers at once; the work runs
// afterwards under the front's lifetime.
func (f *Front) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathCommands, f.httpCommand)
	mux.HandleFunc("POST "+PathInteractivity, f.httpInteraction)
	mux.HandleFunc("POST "+PathEvents, f.httpEvents)
	return mux
}

func (f *Front) serveHTTP(ctx context.Context) error {
	addr := f.cfg.Slack.Listen
	if addr == "" {
		f.log.Info().Msg("slack: http mode without listen address; the handler is mounted by the caller")
		return nil
	}
	srv := &http.Server{Addr: addr, Handler: f.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	f.log.Info().Str("listen", ln.Addr().String()).Msg("slack: serving slash commands and interactivity over http")
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// drainMax bounds how much of an oversized body is read and thrown
// away so that the client gets its 413 instead of a cut connection.
const drainMax = 8 << 20

// replayWindow is how long a signature is remembered: Slack's 5 minutes
// and some clock skew.
const replayWindow = 6 * time.Minute

// readBody reads a body up to maxBody. A larger one is drained (up to
// drainMax) and answered 413.
func (f *Front) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) <= maxBody {
		return body, true
	}
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(r.Body, drainMax))
		f.log.Warn().Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Int64("content_length", r.ContentLength).Msg("slack: request body too large")
		if err != nil || r.ContentLength > maxBody+drainMax {
			w.Header().Set("Connection", "close")
		}
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	f.log.Warn().Err(err).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Msg("slack: could not read request body")
	http.Error(w, "bad request", http.StatusBadRequest)
	return nil, false
}

// verified reads the body and checks Slack's signature and timestamp,
// and that the request was not served before (by any replica); on
// failure it has answered 401 (or 400/413/503) and logged why.
func (f *Front) verified(w http.ResponseWriter, r *http.Request) ([]byte, *replayCheck, bool) {
	if r.ContentLength > maxBody+drainMax {
		w.Header().Set("Connection", "close")
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return nil, nil, false
	}
	body, ok := f.readBody(w, r)
	if !ok {
		return nil, nil, false
	}
	reject := func(reason error) ([]byte, *replayCheck, bool) {
		f.log.Warn().Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Str("reason", reason.Error()).Msg("slack: rejected a request that is not verifiably from Slack")
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return nil, nil, false
	}
	sv, err := slack.NewSecretsVerifier(r.Header, f.opts.SigningSecret)
	if err == nil {
		_, err = sv.Write(body)
	}
	if err == nil {
		err = sv.Ensure()
	}
	if err != nil {
		return reject(err)
	}
	// A signature is valid for five minutes; a request seen already, here
	// or by another replica, is a replay (Slack does not resend commands
	// or clicks). It is known by what Slack signs, not by the signature's
	// text: hex ignores case, so one signature has many spellings.
	rc := f.checkReplay(replayKey(r.Header.Get("X-Slack-Request-Timestamp"), body))
	select {
	case <-rc.done:
		if rc.err != nil {
			f.log.Error().Err(rc.err).Str("path", r.URL.Path).Msg("slack: the replay guard cannot be checked; refusing the request")
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return nil, nil, false
		}
		if !rc.first {
			return reject(errors.New("replayed request (signature seen before)"))
		}
	case <-time.After(replayBudget):
		// Slack wants its answer within 3 s: acknowledge now, and let
		// the work wait for the store's verdict.
	}
	return body, rc, true
}

// replayBudget is how long an HTTP request waits for the replay guard
// before it is acknowledged anyway (its work still waits for it).
const replayBudget = 1500 * time.Millisecond

// replayTimeout bounds one check of the replay guard.
const replayTimeout = 30 * time.Second

// replayCheck is one question to the replay guard, answered once.
type replayCheck struct {
	done  chan struct{}
	first bool
	err   error
}

// checkReplay asks the store whether key is new within the replay window.
func (f *Front) checkReplay(key string) *replayCheck {
	rc := &replayCheck{done: make(chan struct{})}
	go func() {
		defer close(rc.done)
		c, cancel := context.WithTimeout(f.base, replayTimeout)
		defer cancel()
		rc.first, rc.err = f.replay.SeenOnce(c, key, replayWindow)
	}()
	return rc
}

// fresh waits for the replay guard: true when the request is new.
func (f *Front) fresh(rc *replayCheck) bool {
	<-rc.done
	switch {
	case rc.err != nil:
		f.log.Error().Err(rc.err).Msg("slack: the replay guard cannot be checked; the request is dropped")
		return false
	case !rc.first:
		f.log.Warn().Msg("slack: rejected a replayed request (signature seen before)")
		return false
	}
	return true
}

// seenOnce asks the store whether key is new, within the replay window.
func (f *Front) seenOnce(ctx context.Context, key string) (bool, error) {
	c, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	return f.replay.SeenOnce(c, key, replayWindow)
}

func (f *Front) httpCommand(w http.ResponseWriter, r *http.Request) {
	body, rc, ok := f.verified(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		f.log.Warn().Str("remote", r.RemoteAddr).Msg("slack: malformed slash command body")
		http.Error(w, "malformed slash command", http.StatusBadRequest)
		return
	}
	cmd := slack.SlashCommand{
		TeamID: form.Get("team_id"), ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"),
		UserID: form.Get("user_id"), UserName: form.Get("user_name"), Command: form.Get("command"),
		Text: form.Get("text"), ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"),
	}
	if err := f.checkCommand(cmd); err != nil {
		f.log.Warn().Str("remote", r.RemoteAddr).Str("reason", err.Error()).Msg("slack: refused a slash command")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	f.goWork(func(ctx context.Context) {
		if f.fresh(rc) {
			f.handleCommand(ctx, cmd)
		}
	})
}

func (f *Front) httpInteraction(w http.ResponseWriter, r *http.Request) {
	body, rc, ok := f.verified(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	var cb slack.InteractionCallback
	if err == nil {
		err = json.Unmarshal([]byte(form.Get("payload")), &cb)
	}
	if err == nil {
		err = f.checkInteraction(cb)
	}
	if err != nil {
		f.log.Warn().Str("remote", r.RemoteAddr).Str("reason", err.Error()).Msg("slack: refused an interactivity payload")
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	f.goWork(func(ctx context.Context) {
		if f.fresh(rc) {
			f.handleInteraction(ctx, cb)
		}
	})
}

func (f *Front) httpEvents(w http.ResponseWriter, r *http.Request) {
	body, rc, ok := f.verified(w, r)
	if !ok {
		return
	}
	ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
	if err != nil {
		f.log.Warn().Str("remote", r.RemoteAddr).Err(err).Msg("slack: malformed event")
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	if ev.Type == slackevents.URLVerification {
		var c slackevents.ChallengeResponse
		if err := json.Unmarshal(body, &c); err != nil {
			http.Error(w, "malformed challenge", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(c.Challenge))
		return
	}
	w.WriteHeader(http.StatusOK)
	f.goWork(func(ctx context.Context) {
		if f.fresh(rc) {
			f.handleEvent(ctx, ev)
		}
	})
}

// replayKey names a verified request by what its signature covers:
// "v0:" + timestamp + ":" + body, hashed.
func replayKey(stamp string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "v0:%s:", stamp)
	h.Write(body)
	return "slack-request:" + hex.EncodeToString(h.Sum(nil))
}
