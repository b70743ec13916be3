// Package kubetest runs a real Kubernetes control plane for tests —
// etcd, kube-apiserver (token authentication, RBAC) and
// kube-controller-manager, built by scripts/k8s-control-plane — and a
// stand-in for the kubelet (kubelet.go), which this machine has not: it
// registers a node (node.go), binds each pod to it, turns it Running and
// Ready and runs a stand-in NocoBase process for it, as the Docker tests
// run stand-in containers, or a helper pod's command; it serves pods/exec
// (exec.go) with the command run on this host, mount paths mapped to the
// volumes' host folders.
//
// One control plane serves a whole test binary (it takes about 20 s to
// come up); each test works in a namespace of its own.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// BinEnv names the folder of the control plane's binaries (scripts/test
// sets it from scripts/k8s-control-plane).
const BinEnv = "NOCOBOT_TEST_K8S_BIN"

// ControlPlane is a running etcd, kube-apiserver and
// kube-controller-manager.
type ControlPlane struct {
	Dir        string
	URL        string // https://127.0.0.1:port
	CAFile     string
	AdminToken string
	Admin      *kubernetes.Clientset
	AdminCfg   *rest.Config
	procs      []*exec.Cmd
	Kubelet    *Kubelet
}

var (
	shared    *ControlPlane
	sharedErr error
	sharedMu  sync.Mutex
)

// Shared returns the test binary's control plane, starting it on first
// use. Without the binaries the test is skipped with a message saying how
// to build them, except under CI, where it fails: there they must be built.
func Shared(t testing.TB) *ControlPlane {
	t.Helper()
	if os.Getenv("NOCOBOT_TEST_K8S_LATER") == "1" {
		t.Skip("the control plane is still being built: scripts/test runs the Kubernetes tests after the others")
	}
	dir := os.Getenv(BinEnv)
	if dir == "" || !exists(filepath.Join(dir, "kube-apiserver")) {
		msg := fmt.Sprintf("no Kubernetes control plane binaries (%s=%q): build them with scripts/k8s-control-plane (scripts/test does)", BinEnv, dir)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = Start(dir)
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// StopShared stops the shared control plane (TestMain calls it).
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Stop()
		shared = nil
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start runs the control plane from the binaries in binDir, in a
// temporary folder, and returns once the API server is ready and the
// controller manager runs.
func Start(binDir string) (cp *ControlPlane, err error) {
	dir, err := os.MkdirTemp("", "nocobot-k8s-")
	if err != nil {
		return nil, err
	}
	cp = &ControlPlane{Dir: dir, AdminToken: randHex(16)}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	if out, err := exec.Command("openssl", "genrsa", "-out", filepath.Join(dir, "sa.key"), "2048").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("openssl genrsa: %v: %s", err, out)
	}
	if out, err := exec.Command("openssl", "rsa", "-in", filepath.Join(dir, "sa.key"), "-pubout", "-out", filepath.Join(dir, "sa.pub")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("openssl rsa: %v: %s", err, out)
	}
	tokens := fmt.Sprintf("%s,admin,admin,system:masters\n", cp.AdminToken)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	if err := cp.run(binDir, "etcd", "--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL, "--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(peerPort), "--unsafe-no-fsync", "--log-level", "error"); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := cp.run(binDir, "kube-apiserver", "--etcd-servers", etcdURL, "--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort), "--cert-dir", certDir,
		"--service-account-key-file", filepath.Join(dir, "sa.pub"), "--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc", "--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC", "--service-cluster-ip-range", "10.0.0.0/24", "--advertise-address", "127.0.0.1",
		"--disable-admission-plugins", "ServiceAccount", "--enable-priority-and-fairness=false"); err != nil {
		return nil, err
	}
	cp.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	cp.CAFile = filepath.Join(certDir, "apiserver.crt")
	if err := cp.waitReady(90 * time.Second); err != nil {
		return nil, err
	}
	cp.AdminCfg = cp.Config(cp.AdminToken)
	if cp.Admin, err = kubernetes.NewForConfig(cp.AdminCfg); err != nil {
		return nil, err
	}
	kc := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(kc, []byte(cp.Kubeconfig(cp.AdminToken, "default")), 0o600); err != nil {
		return nil, err
	}
	if err := cp.run(binDir, "kube-controller-manager", "--kubeconfig", kc, "--service-account-private-key-file", filepath.Join(dir, "sa.key"),
		"--controllers", "*", "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0",
		"--root-ca-file", cp.CAFile, "--concurrent-deployment-syncs", "5"); err != nil {
		return nil, err
	}
	cp.Kubelet = newKubelet(cp)
	if err := cp.Kubelet.start(); err != nil {
		return nil, err
	}
	return cp, nil
}

// run starts one binary, its output in the folder's <name>.log.
func (cp *ControlPlane) run(binDir, name string, args ...string) error {
	logf, err := os.Create(filepath.Join(cp.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and killed with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	logf.Close()
	cp.procs = append(cp.procs, cmd)
	return nil
}

func (cp *ControlPlane) waitReady(limit time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, cp.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cp.AdminToken)
		if res, err := hc.Do(req); err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode == 200 && b.String() == "ok" {
				return nil
			}
		}
		for _, p := range cp.procs {
			if p.ProcessState != nil {
				return fmt.Errorf("%s exited: see %s", filepath.Base(p.Path), cp.Dir)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(cp.Dir, "kube-apiserver.log"))
	if len(log) > 4000 {
		log = log[len(log)-4000:]
	}
	return fmt.Errorf("kube-apiserver not ready within %s:\n%s", limit, log)
}

// Config is a client configuration with token.
func (cp *ControlPlane) Config(token string) *rest.Config {
	return &rest.Config{Host: cp.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: cp.CAFile}, Timeout: 30 * time.Second, QPS: 100, Burst: 200}
}

// Kubeconfig is a kubeconfig file's text for token, namespace default ns.
func (cp *ControlPlane) Kubeconfig(token, ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: u
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: u, namespace: %q}
current-context: test
`, cp.URL, cp.CAFile, token, ns)
}

// Stop stops everything, newest first.
func (cp *ControlPlane) Stop() {
	if cp.Kubelet != nil {
		cp.Kubelet.stop()
	}
	for i := len(cp.procs) - 1; i >= 0; i-- {
		p := cp.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	if os.Getenv("NOCOBOT_TEST_KEEP_K8S") == "" {
		os.RemoveAll(cp.Dir)
	}
}

// Context is a context for harness calls.
func Context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// insecureTLS is for the readiness poll only: the API server writes its
// self-signed certificate as it starts.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // loopback, readiness only
