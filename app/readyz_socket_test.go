package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"github.com/slack-go/slack/slacktest"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/internal/testenv"
)

// socketSlack is a local Slack API that speaks Socket Mode: auth.test,
// apps.connections.open (refused while closed is set) and the socket.
type socketSlack struct {
	srv    *slacktest.Server
	conns  chan *websocket.Conn
	closed atomic.Bool
	done   chan struct{}
}

func newSocketSlack(t *testing.T) *socketSlack {
	s := &socketSlack{conns: make(chan *websocket.Conn, 4), done: make(chan struct{})}
	answer := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
	s.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", func(w http.ResponseWriter, _ *http.Request) {
			answer(w, `{"ok":true,"user":"nocobot","user_id":"UBOT","team":"T","bot_id":"B1"}`)
		})
		c.Handle("/apps.connections.open", func(w http.ResponseWriter, _ *http.Request) {
			if s.closed.Load() {
				answer(w, `{"ok":false,"error":"internal_error"}`)
				return
			}
			answer(w, fmt.Sprintf(`{"ok":true,"url":%q}`, s.srv.GetWSURL()))
		})
		c.Handle("/ws", slacktest.Websocket(func(conn *websocket.Conn) {
			_ = conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1})
			s.conns <- conn
			<-s.done
		}))
	})
	s.srv.Start()
	t.Cleanup(func() {
		close(s.done)
		s.srv.Stop()
	})
	return s
}

func (s *socketSlack) conn(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not open a Socket Mode connection")
	}
	return nil
}

// /readyz waits for a condition, polling.
func readyzUntil(t *testing.T, url, what string, cond func(code int, body string) bool) (int, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, url)
		if cond(code, body) {
			return code, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never %s: %d %q", what, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// In Socket Mode, ready means connected: a socket down for longer than
// the grace makes /readyz answer 503 with the reason; a reconnect makes
// it ready again.
func TestReadyzFollowsTheSocket(t *testing.T) {
	fake := newSocketSlack(t)
	t.Setenv("NOCOBOT_OPSTEST_BOT", "xoxb-ops-test")
	t.Setenv("NOCOBOT_OPSTEST_APP", "xapp-ops-test")
	addr := testenv.FreeAddr(t)
	cfg := loadConfig(t, `
store: {path: %[1]s/n.db}
slack: {mode: socket, bot_token_env: NOCOBOT_OPSTEST_BOT, app_token_env: NOCOBOT_OPSTEST_APP}
http: {listen: "`+addr+`"}
clusters:
`+unreachableProd)
	a, err := app.New(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.SlackAPIURL = fake.srv.GetAPIURL()
	const grace = 700 * time.Millisecond
	a.SocketGrace = grace
	stop := serve(t, a)
	defer stop()
	url := "http://" + addr + "/readyz"
	ready := func(code int, body string) bool { return code == 200 && body == "store: ok\nslack: ok\n" }

	conn := fake.conn(t)
	readyzUntil(t, url, "ready once connected", ready)

	// The socket drops and cannot be opened again.
	fake.closed.Store(true)
	dropped := time.Now()
	_ = conn.Close()
	_, body := readyzUntil(t, url, "503 while the socket is down", func(code int, _ string) bool { return code == 503 })
	if took := time.Since(dropped); took < grace {
		t.Fatalf("not ready %s after the drop, within the grace of %s", took, grace)
	}
	if !strings.HasPrefix(body, "store: ok\nslack: failed: socket mode down for ") || !strings.HasSuffix(body, ": cannot connect: internal_error\n") {
		t.Fatalf("/readyz while down: %q", body)
	}
	if strings.Contains(body, "xapp-") || strings.Contains(body, "ticket") {
		t.Fatalf("/readyz shows a secret: %q", body)
	}

	// Slack takes connections again: the client reconnects, ready again.
	fake.closed.Store(false)
	fake.conn(t)
	readyzUntil(t, url, "ready after the reconnect", ready)
}
