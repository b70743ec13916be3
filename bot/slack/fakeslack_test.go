package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// The front must take the real engine.
var _ Engine = (*procedures.Engine)(nil)

// apiCall is one Web API request the fake Slack received.
type apiCall struct {
	Method string
	Form   url.Values
	TS     string // the ts it answered (posts) or edited (updates)
	At     time.Time
}

func (c apiCall) Channel() string  { return c.Form.Get("channel") }
func (c apiCall) ThreadTS() string { return c.Form.Get("thread_ts") }
func (c apiCall) Text() string     { return c.Form.Get("text") }

// Buttons returns "action_id=value" of every button in the call's blocks.
func (c apiCall) Buttons() []string {
	var blocks slack.Blocks
	if err := json.Unmarshal([]byte(c.Form.Get("blocks")), &blocks); err != nil {
		return nil
	}
	var out []string
	for _, b := range blocks.BlockSet {
		if ab, ok := b.(*slack.ActionBlock); ok {
			for _, e := range ab.Elements.ElementSet {
				if btn, ok := e.(*slack.ButtonBlockElement); ok {
					out = append(out, btn.ActionID+"="+btn.Value)
				}
			}
		}
	}
	return out
}

// fakeSlack is slacktest's server with handlers that record every
// request (chat.postMessage, chat.update, chat.postEphemeral,
// usergroups.users.list) and give unique ts values.
type fakeSlack struct {
	t   *testing.T
	srv *slacktest.Server

	mu     sync.Mutex
	calls  []apiCall
	n      int
	groups map[string][]string
	// fail, when set, may answer a call with an error status instead.
	fail func(method string) (status int, retryAfter string)
	// refuse, when set, may answer a call with a Slack error code
	// ("not_in_channel") instead, as Slack does with HTTP 200.
	refuse func(method string, form url.Values) string
	// violations are the Block Kit limits broken by any message: each
	// was refused with invalid_blocks, as Slack does, and fails the test.
	violations []string
	// authErr and appAuthErr refuse the bot and app-level tokens.
	authErr, appAuthErr string
	uploads             map[string]string // file id → content

	sockets chan *websocket.Conn
	closed  chan struct{}
}

func newFakeSlack(t *testing.T) *fakeSlack {
	fs := &fakeSlack{t: t, groups: map[string][]string{}, sockets: make(chan *websocket.Conn, 4), closed: make(chan struct{}), uploads: map[string]string{}}
	fs.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		for _, m := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral", "usergroups.users.list",
			"files.getUploadURLExternal", "files.completeUploadExternal", "chat.getPermalink", "views.publish",
			"auth.test", "apps.connections.open"} {
			c.Handle("/"+m, fs.handle(m))
		}
		c.Handle("/upload/", fs.handleUpload)
		c.Handle("/respond/", fs.handle("response_url"))
		c.Handle("/ws", slacktest.Websocket(func(conn *websocket.Conn) {
			fs.sockets <- conn
			<-fs.closed
		}))
	})
	fs.srv.Start()
	t.Cleanup(func() {
		close(fs.closed)
		fs.srv.Stop()
		fs.mu.Lock()
		defer fs.mu.Unlock()
		for _, v := range fs.violations {
			t.Errorf("a message broke Block Kit's limits: %s", v)
		}
	})
	return fs
}

// handleUpload takes a file's content at the URL files.getUploadURLExternal gave.
func (fs *fakeSlack) handleUpload(w http.ResponseWriter, r *http.Request) {
	f, _, err := r.FormFile("file")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	fs.mu.Lock()
	fs.uploads[strings.TrimPrefix(r.URL.Path, "/upload/")] = string(b)
	fs.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// form reads a Web API request: a form, or JSON (views.publish, response_url).
func form(r *http.Request) (url.Values, error) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		v := url.Values{}
		for k, x := range body {
			if s, ok := x.(string); ok {
				v.Set(k, s)
				continue
			}
			raw, _ := json.Marshal(x)
			v.Set(k, string(raw))
		}
		return v, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.Form, nil
}

// violations of one recorded request; "" methods are not messages.
func requestViolations(method string, f url.Values) []string {
	switch method {
	case "chat.postMessage", "chat.update", "chat.postEphemeral", "response_url":
		return blockKitViolations(f.Get("text"), f.Get("blocks"), false)
	case "views.publish":
		var v struct {
			Type   string          `json:"type"`
			Blocks json.RawMessage `json:"blocks"`
		}
		if err := json.Unmarshal([]byte(f.Get("view")), &v); err != nil {
			return []string{"views.publish without a view: " + err.Error()}
		}
		return blockKitViolations("", string(v.Blocks), true)
	}
	return nil
}

func (fs *fakeSlack) handle(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rf, err := form(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "); tok != "" && rf.Get("token") == "" {
			rf.Set("token", tok)
		}
		fs.mu.Lock()
		refuse := func(code string) {
			fs.calls = append(fs.calls, apiCall{Method: method + " (refused: " + code + ")", Form: rf, At: time.Now()})
			fs.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": code})
		}
		if vs := requestViolations(method, rf); len(vs) > 0 {
			fs.violations = append(fs.violations, fmt.Sprintf("%s %q: %s", method, trunc(rf.Get("text"), 80), strings.Join(vs, "; ")))
			refuse("invalid_blocks")
			return
		}
		if fs.refuse != nil {
			if code := fs.refuse(method, rf); code != "" {
				refuse(code)
				return
			}
		}
		switch {
		case method == "auth.test" && fs.authErr != "":
			refuse(fs.authErr)
			return
		case method == "apps.connections.open" && fs.appAuthErr != "":
			refuse(fs.appAuthErr)
			return
		}
		if fs.fail != nil {
			if status, after := fs.fail(method); status != 0 {
				fs.calls = append(fs.calls, apiCall{Method: method + " (failed)", Form: rf, At: time.Now()})
				fs.mu.Unlock()
				if after != "" {
					w.Header().Set("Retry-After", after)
				}
				w.WriteHeader(status)
				return
			}
		}
		fs.n++
		ts := fmt.Sprintf("1700000000.%06d", fs.n)
		c := apiCall{Method: method, Form: rf, At: time.Now()}
		var resp any
		switch method {
		case "files.getUploadURLExternal":
			id := fmt.Sprintf("F%d", fs.n)
			resp = map[string]any{"ok": true, "upload_url": fs.srv.GetAPIURL() + "upload/" + id, "file_id": id}
		case "files.completeUploadExternal":
			var files []struct {
				ID    string `json:"id"`
				Title string `json:"title"`
			}
			_ = json.Unmarshal([]byte(rf.Get("files")), &files)
			for _, f := range files {
				c.Form.Set("content", fs.uploads[f.ID])
			}
			resp = map[string]any{"ok": true, "files": files}
		case "chat.getPermalink":
			resp = map[string]any{"ok": true, "channel": rf.Get("channel"), "permalink": "https://nocobot-test.slack.com/archives/" + rf.Get("channel") + "/p" + strings.ReplaceAll(rf.Get("message_ts"), ".", "")}
		case "views.publish":
			resp = map[string]any{"ok": true, "view": map[string]any{"id": "V1"}}
		case "response_url":
			resp = map[string]any{"ok": true}
		case "auth.test":
			resp = map[string]any{"ok": true, "url": "https://nocobot-test.slack.com/", "team": "Test", "user": "nocobot", "team_id": "T1", "user_id": botUser, "bot_id": "B1"}
		case "apps.connections.open":
			resp = map[string]any{"ok": true, "url": fs.srv.GetWSURL()}
		case "chat.postMessage":
			c.TS = ts
			resp = map[string]any{"ok": true, "channel": r.Form.Get("channel"), "ts": ts}
		case "chat.update":
			c.TS = r.Form.Get("ts")
			resp = map[string]any{"ok": true, "channel": r.Form.Get("channel"), "ts": c.TS, "text": r.Form.Get("text")}
		case "chat.postEphemeral":
			c.TS = ts
			resp = map[string]any{"ok": true, "message_ts": ts}
		case "usergroups.users.list":
			resp = map[string]any{"ok": true, "users": fs.groups[r.Form.Get("usergroup")]}
		}
		fs.calls = append(fs.calls, c)
		fs.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}
}

func (fs *fakeSlack) URL() string { return fs.srv.GetAPIURL() }

// Calls returns the recorded calls of the given methods (all if none).
func (fs *fakeSlack) Calls(methods ...string) []apiCall {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []apiCall
	for _, c := range fs.calls {
		if len(methods) == 0 || contains(methods, c.Method) {
			out = append(out, c)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// waitFor polls until cond holds over the recorded calls.
func (fs *fakeSlack) waitFor(what string, cond func([]apiCall) bool) []apiCall {
	fs.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		calls := fs.Calls()
		if cond(calls) {
			return calls
		}
		if time.Now().After(deadline) {
			fs.t.Fatalf("timed out waiting for %s; calls so far:\n%s", what, dumpCalls(calls))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ephemeralTo waits for an ephemeral reply to user containing substr.
func (fs *fakeSlack) ephemeralTo(user, substr string) apiCall {
	fs.t.Helper()
	var got apiCall
	fs.waitFor(fmt.Sprintf("ephemeral to %s containing %q", user, substr), func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "chat.postEphemeral" && c.Form.Get("user") == user && strings.Contains(c.Text(), substr) {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

func dumpCalls(cs []apiCall) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s ch=%s ts=%s thread=%s user=%s text=%q buttons=%v\n", c.Method, c.Channel(), c.TS, c.ThreadTS(), c.Form.Get("user"), trunc(c.Text(), 120), c.Buttons())
	}
	return b.String()
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Users and groups of the test configuration.
const (
	chProd    = "CPROD"    // bound to cluster prod
	chOps     = "COPS"     // listed in access.slack.channels
	chRandom  = "CRANDOM"  // not obeyed
	uRequest  = "UREQUEST" // may run and decide
	uApprover = "UAPPROVE" // may decide (through a group)
	uStranger = "USTRANGE" // may nothing
	gApprover = "SAPPROVE"
	botUser   = "UNOCOBOT" // the bot itself
)

func testConfig(mode string) *config.Config {
	return &config.Config{
		Slack: config.Slack{Mode: mode, Command: "/nocobase"},
		Access: config.Access{
			Run:      config.Principals{Users: []string{uRequest}},
			Decide:   config.Principals{Users: []string{uRequest}, Groups: []string{gApprover}},
			FourEyes: true,
			Slack:    config.AccessSlack{Channels: []string{chOps}},
		},
		Clusters: []config.Cluster{{Name: "prod", Slack: config.ClusterSlack{Channel: chProd}}, {Name: "staging"}},
	}
}

// harness is a front on a real engine with in-process clusters.
type harness struct {
	t     *testing.T
	fs    *fakeSlack
	front *Front
	eng   *procedures.Engine
	bus   *events.Bus
	store store.Store
	world *proctest.World
	cfg   *config.Config
	stop  context.CancelFunc
	http  *httptest.Server
	opts  Options
	sched bot.Scheduler

	mu        sync.Mutex
	frontStop func()
	logs      syncBuffer
}

// syncBuffer collects the front's logs so tests can check them.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// setup is what a harness option may change before the bot starts.
type setup struct {
	opts  *Options
	sched *bot.Scheduler
	prod  *procedures.Cluster // the prod cluster's parts and timeouts
	cfg   *config.Config
	// noFront leaves the front to the test (a second replica, a token check).
	noFront bool
}

type harnessOpt func(*setup)

func withScheduler(sc bot.Scheduler) harnessOpt {
	return func(s *setup) { *s.sched = sc }
}

func withOptions(fn func(*Options)) harnessOpt {
	return func(s *setup) { fn(s.opts) }
}

func newHarness(t *testing.T, mode string, opts ...harnessOpt) *harness {
	t.Helper()
	fs := newFakeSlack(t)
	fs.groups[gApprover] = []string{uApprover}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nocobot.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	world := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	cfg := testConfig(mode)
	o := Options{
		Config: cfg, BotToken: "xoxb-test-secret", AppToken: "xapp-test-secret", SigningSecret: testSecret,
		APIURL: fs.URL(), EditEvery: 200 * time.Millisecond, FlushDelay: 20 * time.Millisecond,
		CallTimeout: 2 * time.Second, MaxBackoff: 200 * time.Millisecond, Replay: st,
	}
	var sched bot.Scheduler
	su := setup{opts: &o, sched: &sched, prod: world.Cluster("prod"), cfg: cfg}
	for _, fn := range opts {
		fn(&su)
	}
	bus := events.NewBus()
	eng, err := procedures.New(procedures.Options{
		Events: bus, Store: st, Clusters: []*procedures.Cluster{su.prod, proctest.NewWorld("nocobase/nocobase:1.7.13", true, "s-1").Cluster("staging")},
		Log: zerolog.Nop(), PollEvery: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	engDone := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(engDone) }()
	h := &harness{t: t, fs: fs, eng: eng, bus: bus, store: st, world: world, cfg: cfg, stop: cancel, opts: o, sched: sched}
	if !su.noFront {
		h.startFront()
	}
	if mode == "http" {
		h.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			f := h.front
			h.mu.Unlock()
			if f == nil {
				http.Error(w, "no front", http.StatusServiceUnavailable)
				return
			}
			f.Handler().ServeHTTP(w, r)
		}))
		t.Cleanup(h.http.Close)
	}
	t.Cleanup(func() {
		h.stopFront()
		cancel()
		<-engDone
		st.Close()
		// Secrets never reach the logs or Slack.
		for _, secret := range []string{o.BotToken, o.AppToken, o.SigningSecret} {
			if strings.Contains(h.logs.String(), secret) {
				t.Errorf("a secret is in the logs")
			}
			for _, c := range fs.Calls() {
				// (The bot token authenticates the call itself: form field "token".)
				if strings.Contains(c.Text(), secret) || strings.Contains(c.Form.Get("blocks"), secret) {
					t.Errorf("a secret was in a message: %s", c.Method)
				}
			}
		}
	})
	return h
}

// startFront starts a new front on the harness's engine (a bot restart).
func (h *harness) startFront() {
	h.t.Helper()
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(h.t), &h.logs))
	disp, err := bot.New(bot.Options{Config: h.cfg, Engine: h.eng, Scheduler: h.sched, Log: log})
	if err != nil {
		h.t.Fatal(err)
	}
	front, err := New(h.opts, disp, h.eng, log)
	if err != nil {
		h.t.Fatal(err)
	}
	// As serve does before it starts the front.
	if err := front.CheckTokens(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = front.Run(ctx); close(done) }()
	<-front.subscribed
	h.mu.Lock()
	h.front, h.frontStop = front, func() { cancel(); <-done }
	h.mu.Unlock()
}

// stopFront stops the front (a bot shutdown); the engine goes on.
func (h *harness) stopFront() {
	h.mu.Lock()
	stop := h.frontStop
	h.frontStop = nil
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

const testSecret = "s3cret-signing"

// sign signs a body the way Slack does.
func sign(secret string, ts int64, body string) string {
	return signWith(secret, fmt.Sprint(ts), body)
}
