package nocobase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

const secretKey = "sk-very-secret-api-key"

// Answers in the shapes seen on a real NocoBase 2.2.15 (docs/nocobase.md).
func commanding(command, message string) string {
	return fmt.Sprintf(`{"error":{"status":503,"maintaining":true,"message":%q,"command":{"name":%q},"code":"APP_COMMANDING"}}`, message, command)
}

const (
	bodyEmptyToken   = `{"errors":[{"message":"Unauthenticated. Please sign in to continue.","code":"EMPTY_TOKEN"}]}`
	bodyInvalidToken = `{"errors":[{"message":"Unauthenticated. Please sign in to continue.","code":"INVALID_TOKEN"}]}`
	bodyBadName      = `{"errors":[{"message":"plugin name invalid"}]}`
	bodyEnableFailed = `{"errors":[{"message":"Failed to enable plugin: Cannot find module '@nocobase/plugin-nope'"}]}`
	bodyInfo         = `{"data":{"database":{"dialect":"postgres"},"version":"2.2.15","lang":"en-US","name":"main","theme":"default"}}`
)

type answer struct {
	status int
	ctype  string
	body   string
}

func fixed(a answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.ctype == "" {
			a.ctype = "application/json; charset=utf-8"
		}
		w.Header().Set("Content-Type", a.ctype)
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}
}

func newClient(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	if opts.Settle == 0 {
		opts.Settle = 100 * time.Millisecond
	}
	return New(opts, zerolog.New(zerolog.NewTestWriter(t)))
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name string
		ans  answer
		want ports.AppStatus
		line string
	}{
		{"ok", answer{200, "text/plain; charset=utf-8", "ok"},
			ports.AppStatus{Healthy: true, Listening: true, HTTPStatus: 200}, "healthy"},
		{"start", answer{503, "", commanding("start", "load plugin [ai], 50/77")},
			ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_COMMANDING", Command: "start", Message: "load plugin [ai], 50/77"},
			"APP_COMMANDING start — load plugin [ai], 50/77"},
		{"upgrade", answer{503, "", commanding("upgrade", "run migrations")},
			ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_COMMANDING", Command: "upgrade", Message: "run migrations"},
			"APP_COMMANDING upgrade — run migrations"},
		{"pm.enable", answer{503, "", commanding("pm.enable", "syncing database in enable plugin ai...")},
			ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_COMMANDING", Command: "pm.enable", Message: "syncing database in enable plugin ai..."},
			"APP_COMMANDING pm.enable — syncing database in enable plugin ai..."},
		{"app error", answer{503, "", `{"error":{"status":503,"maintaining":true,"message":"duplicate key value violates unique constraint","code":"APP_ERROR"}}`},
			ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_ERROR", Message: "duplicate key value violates unique constraint"},
			"APP_ERROR — duplicate key value violates unique constraint"},
		{"200 but not ok", answer{200, "text/html", "<html>welcome</html>"},
			ports.AppStatus{Listening: true, HTTPStatus: 200, Message: "OK"}, "HTTP 200 — OK"},
		{"nginx 502", answer{502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"},
			ports.AppStatus{Listening: true, HTTPStatus: 502, Message: "Bad Gateway"}, "HTTP 502 — Bad Gateway"},
		{"not found", answer{404, "", `{"error":{"status":404,"message":"app main not found","code":"APP_NOT_FOUND"}}`},
			ports.AppStatus{Listening: true, HTTPStatus: 404, Code: "APP_NOT_FOUND", Message: "app main not found"},
			"APP_NOT_FOUND — app main not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path.Store(r.URL.Path + " auth=" + r.Header.Get("Authorization"))
				fixed(tt.ans)(w, r)
			}))
			defer srv.Close()
			c := newClient(t, Options{APIKey: secretKey})
			got, err := c.Probe(context.Background(), srv.URL+"/")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("status = %+v, want %+v", got, tt.want)
			}
			if l := Describe(got); l != tt.line {
				t.Errorf("line = %q, want %q", l, tt.line)
			}
			// The health check is public: the key is not sent there.
			if p := path.Load(); p != "/api/__health_check auth=" {
				t.Errorf("request = %q", p)
			}
		})
	}
}

func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestProbeConnectionRefused(t *testing.T) {
	c := newClient(t, Options{})
	st, err := c.Probe(context.Background(), refusedURL(t))
	if err != nil {
		t.Fatalf("connection refused must not be an error: %v", err)
	}
	if st.Listening || st.Healthy {
		t.Errorf("status = %+v", st)
	}
	if got := Describe(st); got != "not listening yet (connection refused)" {
		t.Errorf("line = %q", got)
	}
}

func TestProbeTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer srv.Close()
	c := newClient(t, Options{RequestTimeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := c.Probe(context.Background(), srv.URL)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("probe took %s", d)
	}
}

// script is a node whose health check walks through a list of answers,
// one per probe, staying on the last one.
type script struct {
	mu      sync.Mutex
	answers []answer
	n       int
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := s.answers[min(s.n, len(s.answers)-1)]
	s.n++
	s.mu.Unlock()
	fixed(a)(w, r)
}

type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) progress(s string) {
	r.mu.Lock()
	r.lines = append(r.lines, s)
	r.mu.Unlock()
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func TestWaitHealthyReportsChangesOnly(t *testing.T) {
	// The listener exists only after a while: first connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &script{answers: []answer{
		{503, "", commanding("start", "load plugin [acl], 1/77")},
		{503, "", commanding("start", "load plugin [acl], 1/77")},
		{503, "", commanding("start", "load plugin [ai], 50/77")},
		{503, "", commanding("start", "load plugin [ai], 50/77")},
		{503, "", commanding("start", "emit afterStart")},
		{200, "text/plain; charset=utf-8", "ok"},
	}}
	srv := httptest.NewUnstartedServer(s)
	go func() {
		time.Sleep(150 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		srv.Listener = l
		srv.Start()
	}()
	defer func() {
		for srv.URL == "" {
			time.Sleep(10 * time.Millisecond)
		}
		srv.Close()
	}()

	c := newClient(t, Options{})
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx, ports.Node{Name: "app-1", URL: "http://" + addr}, rec.progress); err != nil {
		t.Fatal(err)
	}
	lines := rec.all()
	want := []string{
		"app-1: not listening yet (connection refused)",
		"app-1: APP_COMMANDING start — load plugin [acl], 1/77",
		"app-1: APP_COMMANDING start — load plugin [ai], 50/77",
		"app-1: APP_COMMANDING start — emit afterStart",
	}
	if len(lines) != len(want)+1 {
		t.Fatalf("progress = %q", lines)
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
	if !strings.HasPrefix(lines[len(lines)-1], "app-1: healthy after ") {
		t.Errorf("last line = %q", lines[len(lines)-1])
	}
}

func TestWaitHealthyAliveAndDeadline(t *testing.T) {
	srv := httptest.NewServer(fixed(answer{503, "", commanding("upgrade", "run migrations")}))
	defer srv.Close()
	c := newClient(t, Options{AliveEvery: 150 * time.Millisecond})
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := c.WaitHealthy(ctx, ports.Node{Name: "app-2", URL: srv.URL}, rec.progress)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "app-2: not healthy after") || !strings.Contains(err.Error(), "APP_COMMANDING upgrade — run migrations") {
		t.Errorf("err = %v", err)
	}
	lines := rec.all()
	// One line for the status, then only elapsed-time updates (~every
	// 150 ms in 500 ms), never one per probe (~25 probes).
	if len(lines) < 2 || len(lines) > 5 {
		t.Fatalf("progress = %q", lines)
	}
	if lines[0] != "app-2: APP_COMMANDING upgrade — run migrations" {
		t.Errorf("first = %q", lines[0])
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "app-2: still waiting (") {
			t.Errorf("alive line = %q", l)
		}
	}
}

func TestWaitHealthyGivesUpOnAppError(t *testing.T) {
	srv := httptest.NewServer(fixed(answer{503, "", `{"error":{"status":503,"maintaining":true,"message":"duplicate key","code":"APP_ERROR"}}`}))
	defer srv.Close()
	c := newClient(t, Options{ErrorGrace: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := c.WaitHealthy(ctx, ports.Node{Name: "app-3", URL: srv.URL}, nil)
	if err == nil || !strings.Contains(err.Error(), "app-3: node failed: APP_ERROR — duplicate key") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s, should give up after the grace", time.Since(start))
	}
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name    string
		ans     answer
		want    string
		wantErr string
	}{
		{"ready", answer{200, "", bodyInfo}, "2.2.15", ""},
		{"commanding", answer{503, "", commanding("start", "load locale resource")}, "",
			"app-1: version: HTTP 503: the app is not running (APP_COMMANDING start): load locale resource"},
		{"no version", answer{200, "", `{"data":{}}`}, "", "without data.version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/app:getInfo" {
					http.NotFound(w, r)
					return
				}
				fixed(tt.ans)(w, r)
			}))
			defer srv.Close()
			v, err := newClient(t, Options{}).Version(context.Background(), ports.Node{Name: "app-1", URL: srv.URL})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || v != tt.want {
				t.Fatalf("version = %q, %v", v, err)
			}
		})
	}
}

// fakeNode is a NocoBase node for plugin actions: the API answers as
// configured, and after an accepted action the health check goes through
// pm.enable for a few probes.
type fakeNode struct {
	mu         sync.Mutex
	action     answer
	busyProbes int
	requests   []string
	bodies     []string
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/api/__health_check":
		if f.busyProbes > 0 {
			f.busyProbes--
			fixed(answer{503, "", commanding("pm.enable", "syncing database in enable plugin ai...")})(w, r)
			return
		}
		fixed(answer{200, "text/plain", "ok"})(w, r)
	default:
		b, _ := io.ReadAll(r.Body)
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI()+" auth="+r.Header.Get("Authorization")+" role="+r.Header.Get("X-Role"))
		f.bodies = append(f.bodies, string(b))
		if r.Header.Get("Authorization") == "" {
			fixed(answer{401, "", bodyEmptyToken})(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+secretKey {
			fixed(answer{401, "", bodyInvalidToken})(w, r)
			return
		}
		fixed(f.action)(w, r)
		if f.action.status == 200 {
			f.busyProbes = 3
		}
	}
}

func TestPlugin(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		action  string
		pkg     string
		ans     answer
		wantReq string
		wantErr string
	}{
		{"enable", secretKey, "enable", "ai", answer{200, "", `{"data":"ai"}`},
			"POST /api/pm:enable?awaitResponse=true&filterByTk=ai auth=Bearer " + secretKey + " role=admin", ""},
		{"disable", secretKey, "disable", "@nocobase/plugin-ai", answer{200, "", `{"data":"@nocobase/plugin-ai"}`},
			"POST /api/pm:disable?awaitResponse=true&filterByTk=%40nocobase%2Fplugin-ai auth=Bearer " + secretKey + " role=admin", ""},
		{"add", secretKey, "add", "@my/plugin-x@1.2.3", answer{200, "", `{"data":{}}`},
			"POST /api/pm:add auth=Bearer " + secretKey + " role=admin", ""},
		{"no key", "", "enable", "ai", answer{200, "", ""}, "",
			"app-1: pm:enable ai: HTTP 401: no API key was sent; configure one (plugin API keys) [EMPTY_TOKEN]: Unauthenticated. Please sign in to continue."},
		{"bad key", "sk-wrong-key", "enable", "ai", answer{200, "", ""}, "",
			"app-1: pm:enable ai: HTTP 401: the API key was rejected (wrong, expired or revoked) [INVALID_TOKEN]"},
		{"invalid name", secretKey, "enable", "x", answer{400, "", bodyBadName}, "",
			"app-1: pm:enable x: HTTP 400: invalid request (plugin name?): plugin name invalid"},
		{"server error", secretKey, "enable", "nope", answer{500, "", bodyEnableFailed}, "",
			"app-1: pm:enable nope: HTTP 500: NocoBase failed: Failed to enable plugin: Cannot find module '@nocobase/plugin-nope'"},
		{"unknown action", secretKey, "remove", "ai", answer{200, "", ""}, "", `unknown plugin action "remove"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := &fakeNode{action: tt.ans}
			srv := httptest.NewServer(node)
			defer srv.Close()
			c := newClient(t, Options{APIKey: tt.key, Role: "admin"})
			rec := &recorder{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := c.Plugin(ctx, ports.Node{Name: "app-1", URL: srv.URL}, tt.action, tt.pkg, rec.progress)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.key != "" && strings.Contains(err.Error(), tt.key) {
					t.Fatalf("error leaks the API key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			node.mu.Lock()
			defer node.mu.Unlock()
			if len(node.requests) != 1 || node.requests[0] != tt.wantReq {
				t.Errorf("requests = %q, want %q", node.requests, tt.wantReq)
			}
			if tt.action == "add" && node.bodies[0] != `{"packageName":"@my/plugin-x","version":"1.2.3"}` {
				t.Errorf("add body = %s", node.bodies[0])
			}
			if node.busyProbes != 0 {
				t.Errorf("returned before the node went through its reload (%d busy probes left)", node.busyProbes)
			}
			lines := rec.all()
			want := []string{"app-1: pm:" + tt.action + " " + tt.pkg, "app-1: APP_COMMANDING pm.enable — syncing database in enable plugin ai..."}
			if len(lines) != 3 || lines[0] != want[0] || lines[1] != want[1] || !strings.HasPrefix(lines[2], "app-1: healthy after") {
				t.Errorf("progress = %q", lines)
			}
		})
	}
}

func TestPluginWaitsOutSettleWhenNodeStaysOK(t *testing.T) {
	// An older NocoBase answers the action and reloads afterwards; if the
	// reload never shows, the client still waits the settle time.
	node := &fakeNode{action: answer{200, "", `{"data":"ai"}`}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node.ServeHTTP(w, r)
		node.mu.Lock()
		node.busyProbes = 0
		node.mu.Unlock()
	}))
	defer srv.Close()
	c := newClient(t, Options{APIKey: secretKey, Settle: 300 * time.Millisecond})
	start := time.Now()
	if err := c.Plugin(context.Background(), ports.Node{Name: "app-1", URL: srv.URL}, "enable", "ai", nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("returned after %s, before the settle time", d)
	}
}

func TestPlugins(t *testing.T) {
	node := &fakeNode{action: answer{200, "", `{"data":[
		{"name":"ai","packageName":"@nocobase/plugin-ai","version":"2.2.15","enabled":true,"installed":true,"builtIn":false},
		{"name":"acl","packageName":"@nocobase/plugin-acl","version":"2.2.15","enabled":true,"installed":true,"builtIn":true}]}`}}
	srv := httptest.NewServer(node)
	defer srv.Close()
	got, err := newClient(t, Options{APIKey: secretKey}).Plugins(context.Background(), ports.Node{Name: "app-1", URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	want := []Plugin{
		{Name: "ai", PackageName: "@nocobase/plugin-ai", Version: "2.2.15", Enabled: true, Installed: true},
		{Name: "acl", PackageName: "@nocobase/plugin-acl", Version: "2.2.15", Enabled: true, Installed: true, BuiltIn: true},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("plugins = %+v", got)
	}
	_, err = newClient(t, Options{APIKey: "sk-wrong"}).Plugins(context.Background(), ports.Node{Name: "app-1", URL: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "INVALID_TOKEN") || strings.Contains(err.Error(), "sk-wrong") {
		t.Errorf("err = %v", err)
	}
}

func TestBadURL(t *testing.T) {
	c := newClient(t, Options{})
	err := c.WaitHealthy(context.Background(), ports.Node{Name: "app-1", URL: "ftp://x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("err = %v", err)
	}
}
