package lb

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// renderConf turns deploy/nginx/nocobase.conf into a config for a test
// nginx: loopback port, the test's app servers, and a test folder in place
// of /etc/nginx/maintenance. Each replacement must hit, so the test breaks
// if the deploy file changes shape instead of silently testing less.
func renderConf(t *testing.T, port int, apps []string, maintDir string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/nginx/nocobase.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(conf, old) {
			t.Fatalf("deploy/nginx/nocobase.conf has no %q", old)
		}
		conf = strings.ReplaceAll(conf, old, new)
	}
	replace("listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port))
	replace("/etc/nginx/maintenance", maintDir)
	// The test's servers keep the deploy file's parameters.
	serverOpts := ""
	for _, line := range strings.Split(conf, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "server" && strings.HasPrefix(f[1], "prod-app-") {
			serverOpts = " " + strings.TrimSuffix(strings.Join(f[2:], " "), ";")
			break
		}
	}
	if !strings.Contains(serverOpts, "max_fails=0") {
		// Without it nginx marks a restarted node down for fail_timeout.
		t.Fatalf("the deploy file's upstream servers lost max_fails=0 (%q)", serverOpts)
	}
	var servers []string
	for _, a := range apps {
		servers = append(servers, "    server "+a+serverOpts+";")
	}
	var out []string
	done := false
	for _, line := range strings.Split(conf, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "server prod-app-") {
			if !done {
				out = append(out, servers...)
				done = true
			}
			continue
		}
		out = append(out, line)
	}
	if !done {
		t.Fatal("deploy/nginx/nocobase.conf has no prod-app-N upstream servers")
	}
	return strings.Join(out, "\n")
}

type nginxServer struct {
	URL      string
	MaintDir string
	Flag     string
}

// startNginx runs a real nginx with the deploy configuration in front of
// apps (host:port), until the test ends.
func startNginx(t *testing.T, apps []string) nginxServer {
	t.Helper()
	bin := testenv.Nginx(t)
	dir := testenv.TempDir(t)
	// Workers may run as another user: they must reach the page.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	maint := filepath.Join(dir, "maintenance")
	if err := os.MkdirAll(maint, 0o755); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("../../deploy/nginx/maintenance.html")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(maint, "maintenance.html"), page, 0o644); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	user := ""
	if os.Getuid() == 0 {
		user = "user root root;\n"
	}
	main := fmt.Sprintf(`%sworker_processes 1;
error_log %s/error.log warn;
events { worker_connections 128; }
http {
    access_log off;
    default_type application/octet-stream;
    types { text/html html; }
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
%s
}
`, user, dir, renderConf(t, port, apps, maint))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath, "-p", dir, "-e", filepath.Join(dir, "error.log"),
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		out.Close()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
			elog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s\n%s", err, log, elog)
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nginxServer{URL: url, MaintDir: maint, Flag: filepath.Join(maint, "maintenance.on")}
}

type seen struct {
	status     int
	retryAfter string
	ctype      string
	body       string
}

func get(t *testing.T, url string) seen {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return seen{resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), string(b)}
}

func appServer(t *testing.T) (*httptest.Server, string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/__health_check" {
			io.WriteString(w, "ok")
			return
		}
		io.WriteString(w, "hello from the app: "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv, strings.TrimPrefix(srv.URL, "http://")
}

func assertApp(t *testing.T, url string) {
	t.Helper()
	s := get(t, url+"/admin")
	if s.status != 200 || s.body != "hello from the app: /admin" || s.retryAfter != "" {
		t.Fatalf("normal mode: got %d %q (Retry-After %q)", s.status, s.body, s.retryAfter)
	}
}

func assertMaintenance(t *testing.T, url string) {
	t.Helper()
	for _, path := range []string{"/admin", "/api/__health_check", "/api/users:list?page=2"} {
		s := get(t, url+path)
		if s.status != 503 {
			t.Fatalf("maintenance mode %s: status %d, want 503 (%q)", path, s.status, s.body)
		}
		if s.retryAfter != "300" {
			t.Errorf("maintenance mode %s: Retry-After %q, want 300", path, s.retryAfter)
		}
		if !strings.HasPrefix(s.ctype, "text/html") || !strings.Contains(s.body, "We'll be back shortly") {
			t.Errorf("maintenance mode %s: not the maintenance page: %s %q", path, s.ctype, s.body)
		}
	}
}

func TestNginxFlagSwitchesRealNginx(t *testing.T) {
	_, app := appServer(t)
	ngx := startNginx(t, []string{app})
	log := zerolog.New(zerolog.NewTestWriter(t))
	ctx := context.Background()

	lb, err := NewNginx(NginxOptions{FlagPath: ngx.Flag, Probe: ProbeOptions{URL: ngx.URL + "/api/__health_check", Interval: 50 * time.Millisecond}}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	assertApp(t, ngx.URL)
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBNormal {
		t.Fatalf("mode = %s, %v", m, err)
	}
	for i := 0; i < 2; i++ { // twice: idempotent
		if err := lb.SetMode(ctx, ports.LBMaintenance); err != nil {
			t.Fatal(err)
		}
	}
	assertMaintenance(t, ngx.URL)
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBMaintenance {
		t.Fatalf("mode = %s, %v", m, err)
	}
	for i := 0; i < 2; i++ {
		if err := lb.SetMode(ctx, ports.LBNormal); err != nil {
			t.Fatal(err)
		}
	}
	assertApp(t, ngx.URL)
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBNormal {
		t.Fatalf("mode = %s, %v", m, err)
	}
}

func TestNginxNoNodeShowsMaintenancePage(t *testing.T) {
	srv, app := appServer(t)
	ngx := startNginx(t, []string{app})
	assertApp(t, ngx.URL)
	srv.Close()
	// nginx's own 502 (no node answers) becomes the 503 page.
	assertMaintenance(t, ngx.URL)
}

func TestNginxProbeCatchesWrongFlag(t *testing.T) {
	_, app := appServer(t)
	ngx := startNginx(t, []string{app})
	wrong := filepath.Join(testenv.TempDir(t), "elsewhere", "maintenance.on")
	lb, err := NewNginx(NginxOptions{FlagPath: wrong, Probe: ProbeOptions{URL: ngx.URL + "/", Timeout: 300 * time.Millisecond, Interval: 50 * time.Millisecond}}, nil,
		zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	err = lb.SetMode(context.Background(), ports.LBMaintenance)
	if err == nil || !strings.Contains(err.Error(), "still answers 200") {
		t.Fatalf("err = %v", err)
	}
}

// localContainers runs "exec" commands on this host: it stands for the
// Docker adapter where the test needs no engine.
type localContainers struct{ calls []string }

func (l *localContainers) Exec(ctx context.Context, container string, cmd []string, stdin io.Reader, stdout io.Writer) error {
	l.calls = append(l.calls, container+": "+strings.Join(cmd[:2], " "))
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	c.Stdin, c.Stdout = stdin, stdout
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("exec %s: %w: %s", cmd[0], err, stderr.String())
	}
	return nil
}

func (l *localContainers) CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error) {
	return nil, fmt.Errorf("not used")
}

func (l *localContainers) CopyTo(ctx context.Context, container, dir string, tarStream io.Reader) error {
	return fmt.Errorf("not used")
}

func TestNginxFlagThroughExec(t *testing.T) {
	_, app := appServer(t)
	ngx := startNginx(t, []string{app})
	lc := &localContainers{}
	// The flag's folder does not exist yet: the exec script creates it.
	if err := os.RemoveAll(ngx.MaintDir + "/x"); err != nil {
		t.Fatal(err)
	}
	lb, err := NewNginx(NginxOptions{Container: "lb", FlagPath: ngx.Flag, Probe: ProbeOptions{URL: ngx.URL + "/"}}, lc, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := lb.SetMode(ctx, ports.LBMaintenance); err != nil {
		t.Fatal(err)
	}
	assertMaintenance(t, ngx.URL)
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBMaintenance {
		t.Fatalf("mode = %s, %v", m, err)
	}
	if err := lb.SetMode(ctx, ports.LBNormal); err != nil {
		t.Fatal(err)
	}
	assertApp(t, ngx.URL)
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBNormal {
		t.Fatalf("mode = %s, %v", m, err)
	}
	if len(lc.calls) != 4 || lc.calls[0] != "lb: sh -c" {
		t.Errorf("calls = %q", lc.calls)
	}
}
