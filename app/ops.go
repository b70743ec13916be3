package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/store"
)

const (
	// readyTimeout bounds each readiness check.
	readyTimeout = 3 * time.Second
	// slackReadyEvery: Slack is asked at most this often; /readyz is
	// polled every few seconds and Slack's rate limits are per method.
	slackReadyEvery = 30 * time.Second
	// socketGrace is how long a Socket Mode connection may be down before
	// /readyz says not ready: Slack asks clients to reconnect now and then.
	socketGrace = 30 * time.Second
)

// opsServer serves /healthz, /readyz and /metrics.
type opsServer struct {
	ln  net.Listener
	srv *http.Server
}

// listenOps listens on http.listen at once, so a taken port fails serve
// before anything else starts. slackReady is nil when Slack is off.
func (a *App) listenOps(slackReady func(context.Context) error) (*opsServer, error) {
	ln, err := net.Listen("tcp", a.Config.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", readyHandler(a.Store, slackReady))
	mux.Handle("GET /metrics", a.Metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	a.Log.Info().Str("listen", ln.Addr().String()).Msg("serving /healthz, /readyz and /metrics")
	return &opsServer{ln: ln, srv: srv}, nil
}

func (o *opsServer) run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.srv.Shutdown(c)
	}()
	if err := o.srv.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// notePinger is the part of the store a readiness check reads.
type notePinger interface {
	GetNote(ctx context.Context, scope, key string) (string, error)
}

// readyHandler answers 200 when the store answers and, where Slack is
// on, Slack accepts the bot token and (Socket Mode) the socket is
// connected; 503 otherwise. The body has one line per check.
func readyHandler(st notePinger, slackReady func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		var lines []string
		ok := true
		check := func(name string, err error) {
			if err != nil {
				ok = false
				lines = append(lines, name+": failed: "+oneLine(err))
				return
			}
			lines = append(lines, name+": ok")
		}
		_, err := st.GetNote(ctx, "nocobot-readyz", "ping")
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		check("store", err)
		if slackReady == nil {
			lines = append(lines, "slack: off")
		} else {
			check("slack", slackReady(ctx))
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	})
}

// slackCheck fails while the Socket Mode connection has been down for
// longer than the grace (socketDown: since when and why; zero when up),
// and asks Slack whether the bot token works (auth.test), at most every
// slackReadyEvery; between asks it answers the last result.
func (a *App) slackCheck(socketDown func() (time.Time, string)) func(context.Context) error {
	grace := a.SocketGrace
	if grace <= 0 {
		grace = socketGrace
	}
	token, _ := config.Secret("slack.bot_token_env", a.Config.Slack.BotTokenEnv)
	auth := authCheck(token, a.SlackAPIURL)
	return func(ctx context.Context) error {
		if err := socketCheck(socketDown, grace, time.Now()); err != nil {
			return err
		}
		return auth(ctx)
	}
}

// socketCheck is the socket's part of readiness at now.
func socketCheck(socketDown func() (time.Time, string), grace time.Duration, now time.Time) error {
	if socketDown == nil {
		return nil
	}
	since, why := socketDown()
	if since.IsZero() {
		return nil
	}
	if d := now.Sub(since); d >= grace {
		return fmt.Errorf("socket mode down for %s: %s", d.Round(time.Second), why)
	}
	return nil
}

// authCheck asks auth.test at most every slackReadyEvery.
func authCheck(token, apiURL string) func(context.Context) error {
	var opts []slack.Option
	if apiURL != "" {
		opts = append(opts, slack.OptionAPIURL(apiURL))
	}
	api := slack.New(token, opts...)
	var (
		mu   sync.Mutex
		at   time.Time
		last error
	)
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < slackReadyEvery {
			return last
		}
		_, err := api.AuthTestContext(ctx)
		if err != nil {
			err = fmt.Errorf("auth.test: %s", slackErrorText(err))
		}
		at, last = time.Now(), err
		return last
	}
}

// slackErrorText is a Slack error without anything a token could be in.
func slackErrorText(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return oneLine(err)
}

func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
