package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// Paths of the HTTP endpoints (the app manifest names them).
const (
	PathCommands      = "/slack/commands"
	PathInteractivity = "/slack/interactivity"
)

const maxBody = 256 << 10

// Handler serves Slack's slash command and interactivity requests,
// verified with the signing secret. It answers at once; the work runs
// afterwards under the front's lifetime.
func (f *Front) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathCommands, f.httpCommand)
	mux.HandleFunc("POST "+PathInteractivity, f.httpInteraction)
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

// verified reads the body and checks Slack's signature and timestamp;
// on failure it has answered 401 (or 400/413) and logged why.
func (f *Front) verified(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		f.log.Warn().Err(err).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Msg("slack: could not read request body")
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, false
	}
	reject := func(reason error) ([]byte, bool) {
		f.log.Warn().Str("path", r.URL.Path).Str("remote", r.RemoteAddr).Str("reason", reason.Error()).Msg("slack: rejected a request that is not verifiably from Slack")
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return nil, false
	}
	sv, err := slack.NewSecretsVerifier(r.Header, f.opts.SigningSecret)
	if err != nil {
		return reject(err)
	}
	if _, err := sv.Write(body); err != nil {
		return reject(err)
	}
	if err := sv.Ensure(); err != nil {
		return reject(err)
	}
	// A signature is valid for five minutes; one seen already is a
	// replay (Slack does not resend commands or clicks).
	if !f.replay.first(r.Header.Get("X-Slack-Signature"), time.Now()) {
		return reject(errors.New("replayed request (signature seen before)"))
	}
	return body, true
}

func (f *Front) httpCommand(w http.ResponseWriter, r *http.Request) {
	body, ok := f.verified(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("user_id") == "" || form.Get("channel_id") == "" {
		f.log.Warn().Str("remote", r.RemoteAddr).Msg("slack: malformed slash command body")
		http.Error(w, "malformed slash command", http.StatusBadRequest)
		return
	}
	cmd := slack.SlashCommand{
		TeamID: form.Get("team_id"), ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"),
		UserID: form.Get("user_id"), UserName: form.Get("user_name"), Command: form.Get("command"),
		Text: form.Get("text"), ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"),
	}
	w.WriteHeader(http.StatusOK)
	f.goWork(func(ctx context.Context) { f.handleCommand(ctx, cmd) })
}

func (f *Front) httpInteraction(w http.ResponseWriter, r *http.Request) {
	body, ok := f.verified(w, r)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	var cb slack.InteractionCallback
	if err == nil {
		err = json.Unmarshal([]byte(form.Get("payload")), &cb)
	}
	if err != nil || cb.User.ID == "" {
		f.log.Warn().Str("remote", r.RemoteAddr).Msg("slack: malformed interactivity payload")
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
	f.goWork(func(ctx context.Context) { f.handleInteraction(ctx, cb) })
}

// replayGuard remembers the signatures of the last few minutes.
type replayGuard struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	prune time.Time
}

func newReplayGuard() *replayGuard { return &replayGuard{seen: map[string]time.Time{}} }

const replayWindow = 6 * time.Minute // Slack's 5 minutes and some clock skew

func (g *replayGuard) first(sig string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.prune) > time.Minute {
		for k, t := range g.seen {
			if now.Sub(t) > replayWindow {
				delete(g.seen, k)
			}
		}
		g.prune = now
	}
	if t, ok := g.seen[sig]; ok && now.Sub(t) <= replayWindow {
		return false
	}
	g.seen[sig] = now
	return true
}
