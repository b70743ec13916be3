package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/store"
)

// readyTimeout bounds each readiness check.
const readyTimeout = 3 * time.Second

// opsServer serves /healthz, /readyz and /metrics.
type opsServer struct {
	ln  net.Listener
	srv *http.Server
}

// listenOps listens on http.listen at once, so a taken port fails serve
// before anything else starts. /readyz asks each front; those off are
// named as such.
func (a *App) listenOps(fronts []bot.Front, off []string) (*opsServer, error) {
	ln, err := net.Listen("tcp", a.Config.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", readyHandler(a.Store, fronts, off))
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

// readyHandler answers 200 when the store answers and every front is
// ready (Slack: it accepts the bot token and, in Socket Mode, the socket
// is connected); 503 otherwise. The body has one line per check, and one
// per front that is off.
func readyHandler(st notePinger, fronts []bot.Front, off []string) http.Handler {
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
		for _, f := range fronts {
			check(f.Name(), f.Ready(ctx))
		}
		for _, name := range off {
			lines = append(lines, name+": off")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	})
}

func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
