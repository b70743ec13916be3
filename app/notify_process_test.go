package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// hookReceiver is a real local HTTP receiver of nocobot's webhooks.
type hookReceiver struct {
	mu   sync.Mutex
	got  []map[string]any
	errs []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	ts := r.Header.Get("X-Nocobot-Timestamp")
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(ts + "."))
	m.Write(b)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); r.Header.Get("X-Nocobot-Signature") != want {
		h.errs = append(h.errs, "bad signature on "+string(b))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		h.errs = append(h.errs, "not JSON: "+string(b))
	}
	h.got = append(h.got, p)
}

// wait returns the bodies once one has event ev, within 30 s.
func (h *hookReceiver) wait(t *testing.T, ev string) []map[string]any {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h.mu.Lock()
		got := append([]map[string]any(nil), h.got...)
		errs := h.errs
		h.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("receiver: %v", errs)
		}
		for _, p := range got {
			if p["event"] == ev {
				return got
			}
		}
	}
	t.Fatalf("no %s webhook within 30 s", ev)
	return nil
}

const hookSecret = "whsec-process-test-31d9"

// scrapeMetrics parses /metrics into series → value.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// Two `nocobot serve` processes on one store, with slack.mode off, find
// a run that stopped on a failed step while no bot ran (20 minutes ago):
// both report it waiting, for about that long, in /metrics, and the one
// that takes it over tells the webhook receiver (signed, once). Aborted
// from a third process, the run is reported finished, and waits no more.
func TestServeTellsAWaitingRun(t *testing.T) {
	bin := buildNocobot(t)
	dir := testenv.TempDir(t)
	rc := &hookReceiver{}
	hooks := httptest.NewServer(rc)
	defer hooks.Close()

	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "n.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now().Add(-20 * time.Minute)
	run := store.Run{ID: "r-waiting-1", Cluster: "prod", Procedure: "upgrade", Params: map[string]string{"version": "1.7.14"},
		Requester: "scheduler", Via: "scheduler", State: store.StateFailed, Current: 1,
		Steps: []store.Step{
			{Name: "preflight", Title: "Preflight", Status: store.StepDone, Started: opened.Add(-time.Minute), Ended: opened.Add(-50 * time.Second)},
			{Name: "backup", Title: "Back up", Status: store.StepFailed, Started: opened.Add(-40 * time.Second), Ended: opened, Detail: "disk full"},
		},
		Checkpoint: &store.Checkpoint{ID: "failure-1-1", Kind: "failure", Step: 1, Question: "Back up failed: disk full. Retry or abort?",
			Options: []store.Action{store.ActionRetry, store.ActionAbort}, Opened: opened},
		Created: opened.Add(-time.Minute), Updated: opened, Owner: "a-bot-that-died", LeaseUntil: opened}
	if _, err := st.CreateRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	st.Close()

	env := append(withoutSlack(), "NOCOBOT_TEST_HOOK_SECRET="+hookSecret)
	var addrs []string
	for i := range 2 {
		addr := testenv.FreeAddr(t)
		conf := filepath.Join(dir, fmt.Sprintf("nocobot-%d.yaml", i))
		body := fmt.Sprintf(`
store: {path: %[1]s/n.db}
slack: {mode: off}
access: {trust_terminal: true}
http: {listen: %[2]q}
clusters:
  - name: prod
    docker: {host: "unix:///nonexistent/docker.sock"}
    nodes: {labels: {com.docker.compose.service: app}}
    load_balancer: {type: none}
    backup: {destination: %[1]s/backups, database: {container: db, name: nocobase}}
webhooks:
  - {name: oncall, url: %[3]q, secret_env: NOCOBOT_TEST_HOOK_SECRET, timeout: 5s}
`, dir, addr, hooks.URL+"/nocobot")
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		srv := exec.Command(bin, "serve", "--config", conf)
		srv.Env, srv.Stderr = env, &buf
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- srv.Wait() }()
		defer func() {
			_ = srv.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("serve %d ended with %v\n%s", i, err, buf.String())
				}
			case <-time.After(30 * time.Second):
				_ = srv.Process.Kill()
				t.Errorf("serve %d did not stop on SIGTERM", i)
			}
			if strings.Contains(buf.String(), hookSecret) {
				t.Errorf("serve %d logged the webhook secret", i)
			}
		}()
		if code, _ := get(t, "http://"+addr+"/readyz"); code != 200 {
			t.Fatalf("serve %d not ready\n%s", i, buf.String())
		}
		addrs = append(addrs, addr)
	}

	got := rc.wait(t, "run.waiting")
	p := got[0]
	if p["event"] != "run.waiting" || p["status"] != "firing" || p["severity"] != "critical" || p["cluster"] != "prod" ||
		p["dedup_key"] != "nocobot/prod/r-waiting-1" {
		t.Errorf("run.waiting body: %v", p)
	}
	if cp, _ := p["checkpoint"].(map[string]any); cp["kind"] != "failure" || cp["id"] != "failure-1-1" {
		t.Errorf("run.waiting checkpoint: %v", p["checkpoint"])
	}

	const (
		waiting = `nocobot_runs_waiting{cluster="prod",kind="failure",procedure="upgrade"}`
		waited  = `nocobot_runs_waiting_seconds{cluster="prod",kind="failure",procedure="upgrade"}`
		aborted = `nocobot_runs_total{cluster="prod",outcome="aborted",procedure="upgrade"}`
	)
	for i, addr := range addrs {
		m := scrapeMetrics(t, addr)
		if m[waiting] != 1 || m[waited] < 20*60 || m[waited] > 25*60 {
			t.Errorf("serve %d: %s = %v, %s = %v; want 1 and about 1200 s", i, waiting, m[waiting], waited, m[waited])
		}
		if v, ok := m[aborted]; !ok || v != 0 {
			t.Errorf("serve %d: %s = %v (present %v), want 0 from the start", i, aborted, v, ok)
		}
		build := false
		for k, v := range m {
			build = build || strings.HasPrefix(k, "nocobot_build_info{") && v == 1
		}
		if !build {
			t.Errorf("serve %d: no nocobot_build_info", i)
		}
	}

	out, err := exec.Command(bin, "decide", "r-waiting-1", "abort", "--config", filepath.Join(dir, "nocobot-0.yaml"), "--log-level", "error").CombinedOutput()
	if err != nil {
		t.Fatalf("nocobot decide: %v\n%s", err, out)
	}
	got = rc.wait(t, "run.finished")
	var events []string
	for _, p := range got {
		events = append(events, p["event"].(string))
		if p["event"] == "run.finished" {
			if p["status"] != "resolved" || p["dedup_key"] != "nocobot/prod/r-waiting-1" || p["run"].(map[string]any)["state"] != "aborted" {
				t.Errorf("run.finished body: %v", p)
			}
		}
	}
	if strings.Join(events, ",") != "run.waiting,run.finished" {
		t.Errorf("webhooks %v, want run.waiting then run.finished, once each", events)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m0, m1 := scrapeMetrics(t, addrs[0]), scrapeMetrics(t, addrs[1])
		if m0[waiting] == 0 && m1[waiting] == 0 && m0[aborted]+m1[aborted] == 1 &&
			m0[`nocobot_webhook_deliveries_total{outcome="delivered",webhook="oncall"}`]+m1[`nocobot_webhook_deliveries_total{outcome="delivered",webhook="oncall"}`] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the abort: waiting %v/%v, aborted %v/%v, delivered %v/%v", m0[waiting], m1[waiting], m0[aborted], m1[aborted],
				m0[`nocobot_webhook_deliveries_total{outcome="delivered",webhook="oncall"}`], m1[`nocobot_webhook_deliveries_total{outcome="delivered",webhook="oncall"}`])
		}
	}
}
