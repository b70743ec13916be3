package slack

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// socket is the server side of a Socket Mode connection.
type socket struct {
	t    *testing.T
	conn *websocket.Conn
	n    int
}

func (h *harness) socket() *socket {
	h.t.Helper()
	select {
	case c := <-h.fs.sockets:
		s := &socket{t: h.t, conn: c}
		s.write(map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]any{"app_id": "A1"}})
		return s
	case <-time.After(10 * time.Second):
		h.t.Fatal("the bot did not open a Socket Mode connection")
	}
	return nil
}

func (s *socket) write(v any) {
	s.t.Helper()
	if err := s.conn.WriteJSON(v); err != nil {
		s.t.Fatal(err)
	}
}

// send writes an envelope and waits for its ack, returning how long it took.
func (s *socket) send(typ string, payload any) time.Duration {
	s.t.Helper()
	s.n++
	id := typ + "-" + strings.Repeat("x", s.n)
	began := time.Now()
	s.write(map[string]any{"envelope_id": id, "type": typ, "payload": payload, "accepts_response_payload": typ == "slash_commands"})
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ack struct {
		EnvelopeID string          `json:"envelope_id"`
		Payload    json.RawMessage `json:"payload"`
	}
	if err := s.conn.ReadJSON(&ack); err != nil {
		s.t.Fatalf("no ack for %s: %v", id, err)
	}
	if ack.EnvelopeID != id {
		s.t.Fatalf("ack for %q, want %q", ack.EnvelopeID, id)
	}
	return time.Since(began)
}

func slashPayload(user, channel, text string) map[string]any {
	return map[string]any{"command": "/nocobase", "text": text, "user_id": user, "channel_id": channel, "team_id": "T1", "trigger_id": "t"}
}

func clickPayload(user, channel, messageTS, actionID, value string) map[string]any {
	return map[string]any{
		"type":      "block_actions",
		"user":      map[string]any{"id": user},
		"channel":   map[string]any{"id": channel},
		"container": map[string]any{"type": "message", "message_ts": messageTS, "channel_id": channel},
		"actions":   []map[string]any{{"type": "button", "block_id": blockCheckpoint, "action_id": actionID, "value": value}},
	}
}

func TestSocketMode(t *testing.T) {
	h := newHarness(t, "socket")
	s := h.socket()

	// Bad input: acked, then an ephemeral usage line; nothing starts.
	s.send("slash_commands", slashPayload(uRequest, chProd, "upgrade"))
	h.fs.ephemeralTo(uRequest, "Usage: /nocobase upgrade <version>")

	// A whole run driven over the socket.
	d := s.send("slash_commands", slashPayload(uRequest, chProd, "upgrade 1.7.14"))
	t.Logf("Socket Mode ack of a slash command: %s", d)
	root := h.rootOf(chProd, "Upgrade of prod")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	buttons := cp.Buttons()
	if len(buttons) != 3 {
		t.Fatalf("buttons: %v", buttons)
	}
	actionID, value, _ := strings.Cut(buttons[0], "=")

	s.send("interactive", clickPayload(uStranger, chProd, cp.TS, actionID, value))
	h.fs.ephemeralTo(uStranger, "not allowed to decide")
	s.send("interactive", clickPayload(uApprover, chProd, cp.TS, actionID, value))
	h.reply(root.TS, "<@"+uApprover+"> chose *Continue*")
	summary, _ := h.reply(root.TS, "Outcome: *succeeded*")
	if summary.Form.Get("reply_broadcast") != "true" || summary.Channel() != chProd {
		t.Fatalf("summary: %v", summary.Form)
	}
	// Unknown envelopes the bot does not subscribe to are acked too.
	s.send("events_api", map[string]any{"type": "event_callback", "event": map[string]any{"type": "app_mention"}})
}

// The front knows when its Socket Mode connection is down, and why, for
// /readyz: a dropped connection that cannot be opened again is down
// since the drop; a reconnect brings it back.
func TestSocketDownWhileDisconnected(t *testing.T) {
	h := newHarness(t, "socket")
	s := h.socket()
	waitSocket := func(what string, cond func(since time.Time, why string) bool) (time.Time, string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			since, why := h.front.SocketDown()
			if cond(since, why) {
				return since, why
			}
			if time.Now().After(deadline) {
				t.Fatalf("socket never %s (down since %v: %q)", what, since, why)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	up := func(since time.Time, _ string) bool { return since.IsZero() }
	waitSocket("up", up)

	h.fs.mu.Lock()
	h.fs.refuse = func(method string, _ url.Values) string {
		if method == "apps.connections.open" {
			return "internal_error"
		}
		return ""
	}
	h.fs.mu.Unlock()
	dropped := time.Now()
	_ = s.conn.Close()
	since, why := waitSocket("down after the drop", func(since time.Time, why string) bool {
		return !since.IsZero() && strings.Contains(why, "internal_error")
	})
	if since.Before(dropped) {
		t.Fatalf("down since %v, before the drop at %v", since, dropped)
	}
	if why != "cannot connect: internal_error" {
		t.Fatalf("why: %q", why)
	}
	// Failing again does not move the moment it went down.
	time.Sleep(300 * time.Millisecond)
	if again, _ := h.front.SocketDown(); !again.Equal(since) {
		t.Fatalf("down since %v, then %v", since, again)
	}

	h.fs.mu.Lock()
	h.fs.refuse = nil
	h.fs.mu.Unlock()
	s = h.socket()
	waitSocket("up again", up)
	s.send("slash_commands", slashPayload(uRequest, chProd, "help"))
}
