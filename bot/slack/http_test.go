package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

func signWith(secret, ts, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%s:%s", ts, body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// post sends a body to the front's HTTP endpoint, signed with secret at ts.
func (h *harness) post(path, body, secret string, ts time.Time) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.http.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		stamp := fmt.Sprint(ts.Unix())
		req.Header.Set("X-Slack-Request-Timestamp", stamp)
		req.Header.Set("X-Slack-Signature", signWith(secret, stamp, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) commandBody(user, channel, text string) string {
	return url.Values{
		"command": {"/nocobase"}, "text": {text}, "user_id": {user}, "user_name": {strings.ToLower(user)},
		"channel_id": {channel}, "team_id": {"T1"}, "response_url": {h.fs.URL() + "respond/" + user}, "trigger_id": {"t1"},
	}.Encode()
}

// command runs a slash command as Slack would send it, checking the ack.
func (h *harness) command(user, channel, text string) {
	h.t.Helper()
	code, body := h.post(PathCommands, h.commandBody(user, channel, text), testSecret, time.Now())
	if code != http.StatusOK || body != "" {
		h.t.Fatalf("ack of %q: %d %q, want 200 and an empty body", text, code, body)
	}
}

func clickBody(user, channel, messageTS, actionID, value string) string {
	return clickBodyIn(user, channel, "", messageTS, actionID, value)
}

// clickBodyIn is a click on a message in the thread threadTS.
func clickBodyIn(user, channel, threadTS, messageTS, actionID, value string) string {
	container := map[string]any{"type": "message", "message_ts": messageTS, "channel_id": channel}
	if threadTS != "" {
		container["thread_ts"] = threadTS
	}
	payload := map[string]any{
		"type":       "block_actions",
		"trigger_id": fmt.Sprint(time.Now().UnixNano()), // unique, as Slack's are
		"user":       map[string]any{"id": user, "name": strings.ToLower(user)},
		"channel":    map[string]any{"id": channel},
		"container":  container,
		"message":    map[string]any{"ts": messageTS, "thread_ts": threadTS},
		"actions":    []map[string]any{{"type": "button", "action_id": actionID, "block_id": blockCheckpoint, "value": value, "action_ts": "1.2"}},
	}
	b, _ := json.Marshal(payload)
	return url.Values{"payload": {string(b)}}.Encode()
}

// click presses a button as Slack would send it, checking the ack.
func (h *harness) click(user, channel, messageTS, actionID, value string) {
	h.t.Helper()
	code, body := h.post(PathInteractivity, clickBody(user, channel, messageTS, actionID, value), testSecret, time.Now())
	if code != http.StatusOK || body != "" {
		h.t.Fatalf("ack of click %s: %d %q", actionID, code, body)
	}
}

func (h *harness) audit() []store.AuditEntry {
	es, err := h.store.Audit(context.Background(), store.AuditQuery{})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Reverse(es) // oldest first
	return es
}

func (h *harness) waitAudit(n int) []store.AuditEntry {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		es := h.audit()
		if len(es) >= n {
			return es
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("audit log has %d entries, want %d", len(es), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHTTPVerification(t *testing.T) {
	h := newHarness(t, "http")
	valid := h.commandBody(uRequest, chProd, "help")
	tests := []struct {
		name   string
		path   string
		body   string
		secret string
		at     time.Time
		want   int
	}{
		{"signed command", PathCommands, valid, testSecret, time.Now(), http.StatusOK},
		{"wrong secret", PathCommands, h.commandBody(uRequest, chProd, "upgrade 1.7.14"), "not-the-secret", time.Now(), http.StatusUnauthorized},
		{"unsigned", PathCommands, h.commandBody(uRequest, chProd, "upgrade 1.7.14"), "", time.Now(), http.StatusUnauthorized},
		{"timestamp 6 minutes old", PathCommands, h.commandBody(uRequest, chProd, "upgrade 1.7.14 staging"), testSecret, time.Now().Add(-6 * time.Minute), http.StatusUnauthorized},
		{"timestamp 6 minutes ahead", PathCommands, h.commandBody(uRequest, chProd, "upgrade 1.7.14 staging"), testSecret, time.Now().Add(6 * time.Minute), http.StatusUnauthorized},
		{"malformed command body", PathCommands, "%zz%%", testSecret, time.Now(), http.StatusBadRequest},
		{"command without user", PathCommands, "command=%2Fnocobase&text=help", testSecret, time.Now(), http.StatusBadRequest},
		{"malformed interaction payload", PathInteractivity, "payload=%7Bnot-json", testSecret, time.Now(), http.StatusBadRequest},
		{"interaction without payload", PathInteractivity, "", testSecret, time.Now(), http.StatusBadRequest},
		{"wrongly signed click", PathInteractivity, clickBody(uApprover, chProd, "1.1", actionPrefixCP+"continue", "r1|verify-6-1"), "nope", time.Now(), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := h.post(tt.path, tt.body, tt.secret, tt.at); code != tt.want {
				t.Fatalf("got %d %q, want %d", code, body, tt.want)
			}
		})
	}
	t.Run("replayed request", func(t *testing.T) {
		body := h.commandBody(uRequest, chProd, "status")
		at := time.Now()
		if code, _ := h.post(PathCommands, body, testSecret, at); code != http.StatusOK {
			t.Fatalf("first delivery: %d", code)
		}
		if code, _ := h.post(PathCommands, body, testSecret, at); code != http.StatusUnauthorized {
			t.Fatalf("replay: %d, want 401", code)
		}
	})
	// Only the two verified commands (help, status) reached the bot: the
	// rejected ones started nothing and answered nobody.
	es := h.waitAudit(2)
	time.Sleep(200 * time.Millisecond)
	es = h.audit()
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	slices.Sort(actions)
	if !slices.Equal(actions, []string{"/nocobase help", "/nocobase status"}) {
		t.Fatalf("audit: %+v", es)
	}
	if runs, _ := h.store.ListRuns(context.Background(), "", 0); len(runs) != 0 {
		t.Fatalf("a rejected request started %d runs", len(runs))
	}
	if got := h.fs.Calls("chat.postMessage"); len(got) != 0 {
		t.Fatalf("posted: %s", dumpCalls(got))
	}
	h.fs.ephemeralTo(uRequest, "/nocobase "+procedures.Usage("upgrade"))
	h.fs.ephemeralTo(uRequest, "*Status of prod*")
}

func TestCommandReplies(t *testing.T) {
	h := newHarness(t, "http")
	tests := []struct {
		name, user, channel, text string
		want                      string // in the ephemeral reply to user
		outcome                   string // audit outcome prefix
	}{
		{"help", uStranger, chProd, "help", "/nocobase maintain [cluster] [plugin enable|disable|add <package>]", "ok"},
		{"unknown command", uRequest, chProd, "deploy", `unknown command "deploy"`, "refused"},
		{"missing version", uRequest, chProd, "upgrade", "Usage: /nocobase " + procedures.Usage("upgrade"), "refused"},
		{"bad version", uRequest, chProd, "upgrade newest", "is not a NocoBase version or tag", "refused"},
		{"unknown cluster", uRequest, chProd, "upgrade 1.7.14 nope", `unknown cluster "nope"`, "refused"},
		{"cluster needed off its channel", uRequest, chOps, "status", "which cluster?", "refused"},
		{"channel not obeyed", uRequest, chRandom, "status prod", "I don't take commands in this channel", "refused"},
		{"not allowed to run", uStranger, chProd, "upgrade 1.7.14", "You are not allowed to run procedures on prod", "refused"},
		{"approver may not run", uApprover, chProd, "maintain backup", "You are not allowed to run procedures on prod", "refused"},
		{"cancel unknown run", uRequest, chProd, "cancel r0000-none", "There is no run r0000-none", "refused"},
		{"schedule without scheduler", uRequest, chProd, "schedule list", "Scheduling is off", "refused"},
		{"dry run", uRequest, chProd, "upgrade 1.7.14 --dry-run", "Dry run — nothing changes", "ok"},
		{"status", uStranger, chProd, "status", "app-1: running, `nocobase/nocobase:1.7.13`, version 1.7.13", "ok"},
		{"status of another cluster", uStranger, chOps, "status staging", "*Status of staging*", "ok"},
		{"backups", uStranger, chProd, "backups", "prod has no backups yet", "ok"},
		{"history", uStranger, chProd, "history 5", "No runs yet", "ok"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.command(tt.user, tt.channel, tt.text)
			c := h.fs.ephemeralTo(tt.user, tt.want)
			if c.Channel() != tt.channel {
				t.Fatalf("reply went to %s, want %s", c.Channel(), tt.channel)
			}
			es := h.waitAudit(i + 1)
			e := es[i]
			if e.User != tt.user || e.Channel != tt.channel || e.Action != "/nocobase "+tt.text || !strings.HasPrefix(e.Outcome, tt.outcome) {
				t.Fatalf("audit entry: %+v", e)
			}
		})
	}
	if runs, _ := h.store.ListRuns(context.Background(), "", 0); len(runs) != 0 {
		t.Fatalf("%d runs started; none should have", len(runs))
	}
	if acts := h.world.Actions(); slices.ContainsFunc(acts, func(a string) bool { return !strings.HasPrefix(a, "version") }) {
		t.Fatalf("the cluster was touched: %v", acts)
	}
	if got := h.fs.Calls("chat.postMessage", "chat.update"); len(got) != 0 {
		t.Fatalf("messages in channels: %s", dumpCalls(got))
	}
}

// TestHTTPAckLatency measures how fast slash commands are acknowledged
// under 100 concurrent requests (figures for the closing note; no timing
// assertion: the test machines are shared).
func TestHTTPAckLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	h := newHarness(t, "http")
	const n = 100
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		body := h.commandBody(uStranger, chProd, fmt.Sprintf("history %d", i%100+1))
		stamp := fmt.Sprint(time.Now().Unix())
		req, _ := http.NewRequest(http.MethodPost, h.http.URL+PathCommands, strings.NewReader(body))
		req.Header.Set("X-Slack-Request-Timestamp", stamp)
		req.Header.Set("X-Slack-Signature", signWith(testSecret, stamp, body))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			began := time.Now()
			resp, err := http.DefaultClient.Do(req)
			lat[i] = time.Since(began)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	close(start)
	wg.Wait()
	slices.Sort(lat)
	t.Logf("HTTP slash command ack latency, %d concurrent, client-side over TCP: p50 %s, p99 %s, max %s", n, lat[n/2], lat[n*99/100-1], lat[n-1])
	h.waitAudit(n)

	// The handler alone (verification, parsing, ack), without the network.
	handler := h.front.Handler()
	start = make(chan struct{})
	for i := range n {
		// Another user than above: the same body in the same second would
		// be a replay.
		body := h.commandBody(uApprover, chProd, fmt.Sprintf("history %d", i%100+1))
		stamp := fmt.Sprint(time.Now().Unix())
		req := httptest.NewRequest(http.MethodPost, PathCommands, strings.NewReader(body))
		req.Header.Set("X-Slack-Request-Timestamp", stamp)
		req.Header.Set("X-Slack-Signature", signWith(testSecret, stamp, body))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rec := httptest.NewRecorder()
			began := time.Now()
			handler.ServeHTTP(rec, req)
			lat[i] = time.Since(began)
			if rec.Code != http.StatusOK {
				t.Errorf("status %d", rec.Code)
			}
		}()
	}
	close(start)
	wg.Wait()
	slices.Sort(lat)
	t.Logf("HTTP slash command ack latency, %d concurrent, handler only: p50 %s, p99 %s, max %s", n, lat[n/2], lat[n*99/100-1], lat[n-1])
	h.waitAudit(2 * n)
}
