package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/store"
)

// homeView waits for a views.publish to user and returns its texts.
func (h *harness) homeView(user string, after int) string {
	h.t.Helper()
	var got string
	h.fs.waitFor("views.publish to "+user, func(cs []apiCall) bool {
		for _, c := range cs[min(after, len(cs)):] {
			if c.Method == "views.publish" && c.Form.Get("user_id") == user {
				var v struct {
					Type   string          `json:"type"`
					Blocks json.RawMessage `json:"blocks"`
				}
				if json.Unmarshal([]byte(c.Form.Get("view")), &v) != nil || v.Type != "home" {
					return false
				}
				got = blockTexts(apiCall{Form: map[string][]string{"blocks": {string(v.Blocks)}}})
				return true
			}
		}
		return false
	})
	return got
}

// The App Home shows each cluster's state, the run in progress with a
// link to its thread, and the next windows.
func TestAppHome(t *testing.T) {
	h := newHarness(t, "http")
	next := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	w7 := store.Window{ID: "w7", Cluster: "prod", Spec: "0 3 * * 6", TZ: "Europe/Berlin", Command: "upgrade 1.7.15", NextStart: next, Created: time.Now()}
	if err := h.store.PutWindow(context.Background(), w7); err != nil {
		t.Fatal(err)
	}
	// Each reader sees the window in their own time zone; UTC where a
	// client cannot. A terminal keeps the window's own zone.
	nextLine := fmt.Sprintf("w7: `0 3 * * 6` Europe/Berlin, upgrade 1.7.15 on prod — next <!date^%d^{date_short_pretty} {time}|Sat 5 Dec 02:00 UTC>", next.Unix())
	if got, want := bot.WindowLine(w7).Plain(), "— next Sat 5 Dec 03:00 CET"; !strings.HasSuffix(got, want) {
		t.Fatalf("at a terminal the window reads %q, want it to end %q", got, want)
	}
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	h.reply(root.TS, "Verify checkpoint")
	run := h.waitState(h.onlyRun().ID, store.StateWaiting)

	before := len(h.fs.Calls())
	h.event(map[string]any{"type": "app_home_opened", "user": uStranger, "channel": "D1", "tab": "home", "event_ts": "1.1"})
	home := h.homeView(uStranger, before)
	for _, want := range []string{
		"NocoBase clusters", "prod", "staging",
		"app-1: running", "Load balancer: maintenance page (503)",
		"Running: " + run.ID + " — upgrade of prod from 1.7.13 to 1.7.14 (<@" + uRequest + ">), waiting for a decision",
		"<https://nocobot-test.slack.com/archives/" + chProd + "/p" + strings.ReplaceAll(root.TS, ".", "") + "|Thread of run " + run.ID + ">",
		nextLine,
		"s-1: running",
	} {
		if !strings.Contains(home, want) {
			t.Fatalf("the Home tab lacks %q:\n%s", want, home)
		}
	}
	// Looking is not a command: nothing audited besides the upgrade.
	if es := h.audit(); len(es) != 1 {
		t.Fatalf("audit: %+v", es)
	}
	// The status reply shows the window the same way.
	h.command(uStranger, chProd, "status")
	h.fs.ephemeralTo(uStranger, nextLine)
}

// Socket Mode delivers the same event as an envelope.
func TestAppHomeOverSocket(t *testing.T) {
	h := newHarness(t, "socket")
	s := h.socket()
	s.send("events_api", map[string]any{
		"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev1",
		"event": map[string]any{"type": "app_home_opened", "user": uApprover, "channel": "D2", "tab": "home", "event_ts": "1.2"},
	})
	if home := h.homeView(uApprover, 0); !strings.Contains(home, "Running: nothing") {
		t.Fatalf("home: %s", home)
	}
}

// Slack checks an HTTP events URL with a challenge, signed.
func TestEventsURLVerification(t *testing.T) {
	h := newHarness(t, "http")
	body := `{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	code, got := h.post(PathEvents, body, testSecret, time.Now())
	if code != 200 || got != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("challenge: %d %q", code, got)
	}
	if code, _ := h.post(PathEvents, body, "wrong", time.Now()); code != 401 {
		t.Fatalf("unsigned challenge: %d", code)
	}
}
