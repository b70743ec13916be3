package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/kubetest"
)

// load_balancer.probe_url with type kubernetes: the switch is the app
// Service's selector, which endpoints and proxies follow later (the
// kubetest proxy after a lag), so nocobot holds each switch until the
// public URL shows it.

// setProbe adds load_balancer.probe_url to the configuration.
func (s *kubeSetup) setProbe(t *testing.T, url string) {
	t.Helper()
	data, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(data), "      type: kubernetes\n", "      type: kubernetes\n      probe_url: "+url+"\n", 1)
	if conf == string(data) {
		t.Fatal("no load_balancer.type: kubernetes line to add the probe to")
	}
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// firstTime records when cond first holds, checking every 10 ms.
func firstTime(t *testing.T, cond func() bool) func() time.Time {
	var mu sync.Mutex
	var at time.Time
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if cond() {
				mu.Lock()
				at = time.Now()
				mu.Unlock()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	})
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return at
	}
}

// The public URL (through the Service, its selector followed 2 s late)
// shows the maintenance page before any node stops, and NocoBase again
// before the run says traffic is back; a user asking it all along gets
// only NocoBase or the maintenance page.
func TestKubernetesProbeURL(t *testing.T) {
	s := newKubeSetup(t, 2, "1.7.13", "1.7.14")
	proxy := s.c.ServiceProxy(t, "nocobase", 2*time.Second)
	s.setProbe(t, proxy.URL+"/api/__health_check")
	user := firstTime(t, func() bool {
		if res, err := http.Get(proxy.URL + "/api/__health_check"); err == nil {
			res.Body.Close()
		}
		time.Sleep(40 * time.Millisecond)
		return false
	})
	defer user()
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	runID(t, p)
	stopped := firstTime(t, func() bool { return s.c.Workload(t).Replicas < 2 })
	back := firstTime(t, func() bool { return strings.Contains(p.out.String(), "traffic goes to the app nodes again") })
	waitOut(t, p.out, "Choices:", 3*time.Minute)
	io.WriteString(p.stdin, "continue\n")
	if c := p.exit(t, 3*time.Minute); c != 0 {
		t.Fatalf("upgrade exit %d\n%s%s", c, p.out, p.err)
	}
	s.wantCluster(t, 2, s.c.Images["1.7.14"], true)
	var maint, again kubetest.Answer
	var bad []string
	for _, a := range proxy.Answers() {
		switch {
		case a.Maintenance && maint.At.IsZero():
			maint = a
		case a.App && !maint.At.IsZero() && again.At.IsZero():
			again = a
		case !a.App && !a.Maintenance:
			bad = append(bad, fmt.Sprintf("%d at %s", a.Status, a.At.Format("15:04:05.000")))
		}
	}
	if len(bad) > 0 {
		t.Errorf("the public URL gave %d answers that were neither NocoBase nor the maintenance page: %v", len(bad), bad[:min(5, len(bad))])
	}
	stopAt, backAt := stopped(), back()
	switch {
	case maint.At.IsZero() || again.At.IsZero():
		t.Fatalf("the probe through the Service saw the maintenance page at %v and NocoBase again at %v: it should see both", maint.At, again.At)
	case stopAt.IsZero() || backAt.IsZero():
		t.Fatalf("the nodes stopped at %v, traffic said back at %v: the run should show both", stopAt, backAt)
	case !maint.At.Before(stopAt):
		t.Fatalf("the nodes began stopping at %s, before the public URL showed the maintenance page (%s)", stopAt.Format("15:04:05.000"), maint.At.Format("15:04:05.000"))
	case !again.At.Before(backAt):
		t.Fatalf("the run said traffic was back at %s, before the public URL showed NocoBase again (%s)", backAt.Format("15:04:05.000"), again.At.Format("15:04:05.000"))
	}
	t.Logf("public URL: maintenance page at %s, nodes stopping at %s; NocoBase again at %s, the run said so at %s",
		maint.At.Format("15:04:05.000"), stopAt.Format("15:04:05.000"), again.At.Format("15:04:05.000"), backAt.Format("15:04:05.000"))
}

// A probe URL that never shows the page (it does not go through the
// Service) fails the switch, after load_balancer.probe_timeout, with a
// message saying what it saw and what to check, before any node stops or any backup is taken; the operator
// aborts and puts traffic back with nocobot traffic on.
func TestKubernetesProbeNeverSeesThePage(t *testing.T) {
	s := newKubeSetup(t, 2, "1.7.13", "1.7.14")
	proxy := s.c.ServiceProxy(t, "nocobase", time.Hour)
	s.setProbe(t, proxy.URL+"/api/__health_check\n      probe_timeout: 4s")
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	runID(t, p)
	out := waitOut(t, p.out, "Choices:", 3*time.Minute)
	want := "still answers 200 after 4s (not 503): does this URL reach the Service nocobase"
	if !strings.Contains(out, want) {
		t.Fatalf("the failed switch does not say %q:\n%s", want, out)
	}
	w := s.c.Workload(t)
	recorded := false
	for k := range w.Annotations {
		recorded = recorded || strings.HasPrefix(k, "nocobot.io/")
	}
	if w.Replicas != 2 || w.Image != s.c.Images["1.7.13"] || recorded {
		t.Fatalf("after the failed switch the deployment is %+v, want untouched (2 replicas on %s)", w, s.c.Images["1.7.13"])
	}
	s.c.WaitReady(t, "app=nocobase", 2)
	if ents, _ := os.ReadDir(strings.TrimSuffix(strings.TrimSuffix(s.conf, "nocobot.yaml"), "/") + "/backups"); len(ents) > 0 {
		t.Fatalf("a backup was taken after the failed switch: %v", ents)
	}
	io.WriteString(p.stdin, "abort\n")
	if c := p.exit(t, time.Minute); c != 4 {
		t.Fatalf("upgrade exit %d, want 4 (aborted)\n%s%s", c, p.out, p.err)
	}
	code, tout, terr := nocobotxEnv(t, s.env, "traffic", "on", "prod", "--config", s.conf)
	if code != 0 {
		t.Fatalf("traffic on exit %d\n%s%s", code, tout, terr)
	}
	s.wantCluster(t, 2, s.c.Images["1.7.13"], false)
}
