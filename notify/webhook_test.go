package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/notify"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

const secret = "whsec-test-7f3a9c1e5b"

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP server on loopback that records what it gets
// and answers with what answer says for the nth request (from 1).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int, w http.ResponseWriter, r *http.Request)
	signal chan struct{}
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{answer: answer, signal: make(chan struct{}, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: b, at: time.Now()})
		n := len(rc.got)
		rc.mu.Unlock()
		rc.signal <- struct{}{}
		if rc.answer != nil {
			rc.answer(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// waitN waits until the receiver has had n requests.
func (rc *receiver) waitN(t *testing.T, n int, within time.Duration) []received {
	t.Helper()
	deadline := time.After(within)
	for {
		if got := rc.requests(); len(got) >= n {
			return got
		}
		select {
		case <-rc.signal:
		case <-deadline:
			t.Fatalf("receiver got %d requests within %s, want %d", len(rc.requests()), within, n)
		}
	}
}

// outcomes counts what the notifier reports per webhook and outcome.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) observe(webhook, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[webhook+" "+outcome]++
}

// settle waits up to 3 s until every want holds; the notifier reports an
// outcome a moment after the receiver has answered.
func (o *outcomes) settle(t *testing.T, want map[string]int) {
	t.Helper()
	ok := func() bool {
		for k, v := range want {
			if o.get(k) != v {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(3 * time.Second); !ok() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !ok() {
		o.mu.Lock()
		defer o.mu.Unlock()
		t.Errorf("outcomes %v, want %v", o.n, want)
	}
}

func (o *outcomes) get(k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[k]
}

// rig is an engine on a real SQLite store over a simulated cluster, with
// a notifier on its events, as serve wires them.
type rig struct {
	eng  *procedures.Engine
	bus  *events.Bus
	sub  *events.Subscription
	logs *syncBuffer
	out  *outcomes
	stop func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

func newRig(t *testing.T, opts notify.Options) *rig {
	return newRigAt(t, filepath.Join(t.TempDir(), "nocobot.db"), opts)
}

// newRigAt is a rig on the store file at path: a restart is a new rig on
// the same file.
func newRigAt(t *testing.T, path string, opts notify.Options) *rig {
	st, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	bus := events.NewBus()
	eng, err := procedures.New(procedures.Options{Events: bus, Store: st, Clusters: []*procedures.Cluster{w.Cluster("prod")}, Log: zerolog.Nop(),
		PollEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rg := &rig{eng: eng, bus: bus, logs: &syncBuffer{}, out: &outcomes{}}
	opts.Log = zerolog.New(rg.logs).Level(zerolog.DebugLevel)
	opts.Observe = rg.out.observe
	opts.Store = st
	n, err := notify.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched, ran := make(chan struct{}), make(chan struct{})
	nsub := eng.Subscribe()
	go func() { n.Watch(ctx, nsub); close(watched) }()
	rg.sub = eng.Subscribe()
	go func() { _ = eng.Run(ctx); close(ran) }()
	var once sync.Once
	rg.stop = func() {
		once.Do(func() {
			cancel()
			<-ran
			<-watched
			rg.sub.Close()
			st.Close()
		})
	}
	t.Cleanup(rg.stop)
	time.Sleep(10 * time.Millisecond)
	return rg
}

func (rg *rig) waitFor(t *testing.T, desc string, within time.Duration, match func(events.Event) bool) events.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-rg.sub.C:
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within %s", desc, within)
		}
	}
}

// upgradeToCheckpoint starts an upgrade and returns it waiting at its
// verify checkpoint.
func (rg *rig) upgradeToCheckpoint(t *testing.T) store.Run {
	t.Helper()
	req, err := procedures.ParseCommand("upgrade 1.7.14")
	if err != nil {
		t.Fatal(err)
	}
	req.Cluster, req.Requester, req.Via = "prod", "UALICE", "terminal"
	if _, err := rg.eng.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	return rg.waitFor(t, "checkpoint", 15*time.Second, func(ev events.Event) bool {
		return ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil
	}).Run
}

// upgradeThrough starts an upgrade, continues it at its checkpoint and
// waits until it has succeeded; it returns how long that took.
func (rg *rig) upgradeThrough(t *testing.T) (store.Run, time.Duration) {
	t.Helper()
	start := time.Now()
	r := rg.upgradeToCheckpoint(t)
	if _, err := rg.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: r.Checkpoint.ID, Action: store.ActionContinue, By: "ULEAD", Via: "terminal"}); err != nil {
		t.Fatal(err)
	}
	r = rg.waitFor(t, "finished run", 15*time.Second, func(ev events.Event) bool { return ev.Kind == events.RunFinished }).Run
	return r, time.Since(start)
}

// hmacOf is the signature computed here, independently of the package.
func hmacOf(key, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// An upgrade that waits at its checkpoint and succeeds sends, in order,
// run.started, run.waiting and run.finished: each signed with the shared
// secret over its timestamp and body, with the documented keys, and with
// no secret anywhere.
func TestWebhookDeliversSignedEvents(t *testing.T) {
	rc := newReceiver(t, nil)
	rg := newRig(t, notify.Options{Webhooks: []notify.Webhook{{Name: "oncall", URL: rc.srv.URL + "/hook", Secret: []byte(secret)}}})
	run, _ := rg.upgradeThrough(t)
	got := rc.waitN(t, 3, 10*time.Second)

	var events []string
	for i, r := range got {
		ts := r.header.Get(notify.HeaderTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)) > time.Minute {
			t.Errorf("request %d: timestamp %q is not a recent Unix time", i, ts)
		}
		if sig := r.header.Get(notify.HeaderSignature); sig != hmacOf(secret, ts, r.body) {
			t.Errorf("request %d: signature %q does not verify with the secret", i, sig)
		}
		if hmacOf("another-secret", ts, r.body) == r.header.Get(notify.HeaderSignature) {
			t.Errorf("request %d: the signature verifies with any key", i)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		var p map[string]any
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatalf("request %d: body is not JSON: %v\n%s", i, err, r.body)
		}
		events = append(events, p["event"].(string))
		if r.header.Get(notify.HeaderEvent) != p["event"] || r.header.Get(notify.HeaderDelivery) != p["id"] {
			t.Errorf("request %d: headers %v do not match the body's event and id", i, r.header)
		}
		if p["cluster"] != "prod" || p["dedup_key"] != "nocobot/prod/"+run.ID || p["source"] != "nocobot" || p["version"] != float64(1) {
			t.Errorf("request %d: cluster %v, dedup_key %v, source %v, version %v", i, p["cluster"], p["dedup_key"], p["source"], p["version"])
		}
		ru, _ := p["run"].(map[string]any)
		if ru["id"] != run.ID || ru["procedure"] != "upgrade" || ru["requester"] != "UALICE" {
			t.Errorf("request %d: run %v", i, ru)
		}
		if _, ok := ru["facts"]; ok {
			t.Errorf("request %d: the run's internal facts are sent", i)
		}
		for _, part := range [][]byte{r.body, []byte(strings.Join(headerValues(r.header), "\n"))} {
			if bytes.Contains(part, []byte(secret)) {
				t.Errorf("request %d: the secret is in the request", i)
			}
		}
		checkDocumentedKeys(t, p)
	}
	if strings.Join(events, ",") != "run.started,run.waiting,run.finished" {
		t.Fatalf("events %v, want run.started, run.waiting, run.finished", events)
	}
	var waiting notify.Payload
	if err := json.Unmarshal(got[1].body, &waiting); err != nil {
		t.Fatal(err)
	}
	if waiting.Status != "firing" || waiting.Checkpoint == nil || waiting.Checkpoint.Kind != "verify" ||
		!strings.Contains(waiting.Summary, "waits for a decision") || len(waiting.Checkpoint.Options) == 0 {
		t.Errorf("run.waiting: %+v %+v", waiting, waiting.Checkpoint)
	}
	var finished notify.Payload
	if err := json.Unmarshal(got[2].body, &finished); err != nil {
		t.Fatal(err)
	}
	if finished.Status != "resolved" || finished.Run.State != "succeeded" || finished.Run.Ended == nil {
		t.Errorf("run.finished: %+v %+v", finished, finished.Run)
	}
	if strings.Contains(rg.logs.String(), secret) {
		t.Errorf("the secret is in the log:\n%s", rg.logs.String())
	}
	rg.out.settle(t, map[string]int{"oncall delivered": 3})
}

func headerValues(h http.Header) []string {
	var out []string
	for k, vs := range h {
		out = append(out, k+": "+strings.Join(vs, ","))
	}
	return out
}

// A receiver that answers 500 gets the same delivery again, after a
// growing pause, until it accepts it; one that refuses with 400 gets no
// retry; neither the URL's key nor the secret reaches the log.
func TestWebhookRetriesAfterServerErrors(t *testing.T) {
	flaky := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "busy", http.StatusInternalServerError)
		}
	})
	refusing := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad signature", http.StatusBadRequest)
	})
	rg := newRig(t, notify.Options{Backoff: 100 * time.Millisecond, Webhooks: []notify.Webhook{
		{Name: "flaky", URL: flaky.srv.URL + "/?apikey=url-key-4411", Secret: []byte(secret), Events: []string{notify.RunStarted}},
		{Name: "refusing", URL: refusing.srv.URL, Secret: []byte(secret), Events: []string{notify.RunStarted}},
	}})
	rg.upgradeThrough(t)
	got := flaky.waitN(t, 3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("flaky receiver got %d requests, want 3", len(got))
	}
	first := got[0].header.Get(notify.HeaderDelivery)
	for i, r := range got {
		if r.header.Get(notify.HeaderDelivery) != first || !bytes.Equal(r.body, got[0].body) {
			t.Errorf("attempt %d is not the same delivery", i+1)
		}
		if r.header.Get(notify.HeaderSignature) != hmacOf(secret, r.header.Get(notify.HeaderTimestamp), r.body) {
			t.Errorf("attempt %d: signature does not verify", i+1)
		}
	}
	if d1, d2 := got[1].at.Sub(got[0].at), got[2].at.Sub(got[1].at); d1 < 90*time.Millisecond || d2 < 180*time.Millisecond {
		t.Errorf("pauses between attempts %s, %s: want about 100 ms, then 200 ms", d1, d2)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(refusing.requests()); n != 1 {
		t.Errorf("the refusing receiver got %d requests, want 1 (no retry after 400)", n)
	}
	rg.out.settle(t, map[string]int{"flaky retried": 2, "flaky delivered": 1, "refusing failed": 1})
	logs := rg.logs.String()
	for _, s := range []string{secret, "url-key-4411"} {
		if strings.Contains(logs, s) {
			t.Errorf("%q is in the log:\n%s", s, logs)
		}
	}
	if !strings.Contains(logs, "500 Internal Server Error") || !strings.Contains(logs, "400 Bad Request") {
		t.Errorf("the log does not say what the receivers answered:\n%s", logs)
	}
}

// A receiver that never answers holds no run up: the upgrade finishes as
// fast as without a webhook; the deliveries time out, the queue's
// overflow is dropped and counted, and stopping does not wait for them.
func TestHangingReceiverNeverBlocksARun(t *testing.T) {
	release := make(chan struct{})
	hanging := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)

	_, alone := newRig(t, notify.Options{}).upgradeThrough(t)
	rg := newRig(t, notify.Options{Queue: 1, Webhooks: []notify.Webhook{{Name: "dead", URL: hanging.srv.URL, Secret: []byte(secret), Timeout: 30 * time.Second}}})
	_, took := rg.upgradeThrough(t)
	if took > alone+2*time.Second {
		t.Errorf("the upgrade took %s with a hanging receiver, %s without", took, alone)
	}
	hanging.waitN(t, 1, 5*time.Second)
	for deadline := time.Now().Add(3 * time.Second); rg.out.get("dead dropped") == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if rg.out.get("dead dropped") == 0 {
		t.Error("no delivery dropped with a queue of 1 behind a hanging receiver")
	}
	stopped := time.Now()
	rg.stop()
	if d := time.Since(stopped); d > 8*time.Second {
		t.Errorf("stopping took %s behind a hanging receiver", d)
	}
}

// A window announcement goes to the webhooks that want it, with the
// window's start and command; a webhook limited to another cluster gets
// nothing.
func TestWindowAnnounced(t *testing.T) {
	rc := newReceiver(t, nil)
	other := newReceiver(t, nil)
	rg := newRig(t, notify.Options{Webhooks: []notify.Webhook{
		{Name: "oncall", URL: rc.srv.URL, Secret: []byte(secret), Events: []string{notify.WindowAnnounced}},
		{Name: "staging-only", URL: other.srv.URL, Clusters: []string{"staging"}},
	}})
	start := time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)
	rg.bus.Publish(events.Event{Kind: events.WindowAnnounced, Step: -1, Message: "announced", At: time.Now(), Window: &events.WindowEvent{
		Window: store.Window{ID: "nightly", Cluster: "prod", Command: "upgrade 1.7.14", Spec: "0 2 * * *"},
		Start:  start, End: start.Add(time.Hour),
	}})
	got := rc.waitN(t, 1, 5*time.Second)
	var p notify.Payload
	if err := json.Unmarshal(got[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != notify.WindowAnnounced || p.Cluster != "prod" || p.Window == nil || !p.Window.Start.Equal(start) ||
		p.Window.Command != "upgrade 1.7.14" || p.DedupKey != "nocobot/prod/window/nightly/2026-12-08T02:00:00Z" {
		t.Errorf("window.announced: %+v %+v", p, p.Window)
	}
	var m map[string]any
	_ = json.Unmarshal(got[0].body, &m)
	checkDocumentedKeys(t, m)
	time.Sleep(200 * time.Millisecond)
	if n := len(other.requests()); n != 0 {
		t.Errorf("a webhook for staging got %d deliveries about prod", n)
	}
}

// A delivery queued just before nocobot stops is still sent.
func TestStoppingFlushesQueuedDeliveries(t *testing.T) {
	rc := newReceiver(t, nil)
	rg := newRig(t, notify.Options{Webhooks: []notify.Webhook{{Name: "oncall", URL: rc.srv.URL, Events: []string{notify.RunFinished}}}})
	rg.upgradeThrough(t)
	rg.stop()
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("receiver got %d deliveries after the stop, want the run.finished one", n)
	}
}

// A question whose delivery failed (the receiver was down, then nocobot
// restarted) is sent by the next nocobot on the store, once: a further
// restart finds it noted as delivered.
func TestRestartResendsAnUndeliveredQuestion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	down := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	hook := func(url string) notify.Options {
		return notify.Options{ResendAfter: 200 * time.Millisecond, Webhooks: []notify.Webhook{
			{Name: "oncall", URL: url, Secret: []byte(secret), Attempts: 1, Events: []string{notify.RunWaiting}}}}
	}
	a := newRigAt(t, path, hook(down.srv.URL))
	r := a.upgradeToCheckpoint(t)
	down.waitN(t, 1, 5*time.Second)
	a.out.settle(t, map[string]int{"oncall failed": 1})
	a.stop()

	up := newReceiver(t, nil)
	b := newRigAt(t, path, hook(up.srv.URL))
	got := up.waitN(t, 1, 10*time.Second)
	var p notify.Payload
	if err := json.Unmarshal(got[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != notify.RunWaiting || p.Run == nil || p.Run.ID != r.ID || p.Checkpoint == nil || p.Checkpoint.ID != r.Checkpoint.ID ||
		got[0].header.Get(notify.HeaderSignature) != hmacOf(secret, got[0].header.Get(notify.HeaderTimestamp), got[0].body) {
		t.Fatalf("resent question: %s", got[0].body)
	}
	b.out.settle(t, map[string]int{"oncall delivered": 1})
	b.stop()

	c := newRigAt(t, path, hook(up.srv.URL))
	time.Sleep(time.Second)
	c.stop()
	if n := len(up.requests()); n != 1 {
		t.Errorf("the question was delivered %d times, want once", n)
	}
}

func TestNewRefusesUnknownEvents(t *testing.T) {
	_, err := notify.New(notify.Options{Webhooks: []notify.Webhook{{Name: "x", URL: "http://127.0.0.1:1", Events: []string{"run.waited"}}}})
	if err == nil || !strings.Contains(err.Error(), `"run.waited"`) {
		t.Fatalf("err = %v", err)
	}
}
