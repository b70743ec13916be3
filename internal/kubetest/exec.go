package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
)

// The kubelet's exec endpoint. The API server turns a pods/exec request
// (SPDY, or WebSocket v5, which it translates to SPDY) into
// POST https://<node InternalIP>:<kubeletEndpoint port>/exec/<ns>/<pod>/<container>?command=<argv0>&command=<argv1>…&input=1&output=1&error=1
// over HTTP/1.1 with an SPDY/3.1 upgrade (X-Stream-Protocol-Version:
// v4.channel.k8s.io first); with no --kubelet-certificate-authority
// it does not verify the kubelet's certificate (kubelet_client.go: no CA
// means TLS.Insecure), so a self-signed one does.
//
// The stand-in runs the command as a process of this host. There is no
// container file system: an argument (or the working directory, or an
// environment value) that is a mount path of the container, or a path
// under one, is rewritten to the host folder of that volume (hostPath,
// or a claim bound to a hostPath volume), and a folder above a mount path
// to the folder above the host folder when their names agree (hostPath
// below); every other path is the host's. So both `tar -cf - -C
// /app/nocobase/storage .` and, with the claim on <tmp>/storage (as
// Cluster lays it out), `tar -cf - -C /app/nocobase storage` read the
// claim's folder.

const (
	streamCreationTimeout = 30 * time.Second
	streamIdleTimeout     = time.Hour
)

// startServer serves the kubelet API over HTTPS on a free loopback port.
func (k *Kubelet) startServer() (int, error) {
	cert, err := selfSigned()
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/", k.serveExec)
	k.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// HTTP/1.1 only: the SPDY upgrade cannot ride HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	go func() { _ = k.server.ServeTLS(ln, "", "") }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: NodeName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{NodeName}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveExec answers /exec/<ns>/<pod>/<container>, the v4 channel
// protocol over SPDY, as the kubelet's streaming server does.
func (k *Kubelet) serveExec(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/exec/"), "/")
	if len(parts) != 3 {
		http.NotFound(w, req)
		return
	}
	ns, pod, ctr := parts[0], parts[1], parts[2]
	q := req.URL.Query()
	command := q[corev1.ExecCommandParam]
	in, out, errOut := q.Get(corev1.ExecStdinParam) == "1", q.Get(corev1.ExecStdoutParam) == "1", q.Get(corev1.ExecStderrParam) == "1"
	switch {
	case len(command) == 0:
		http.Error(w, "no command", http.StatusBadRequest)
		return
	case q.Get(corev1.ExecTTYParam) == "1":
		http.Error(w, "the stand-in kubelet runs no terminal (tty)", http.StatusBadRequest)
		return
	case !in && !out && !errOut:
		http.Error(w, "you must specify at least 1 of stdin, stdout, stderr", http.StatusBadRequest)
		return
	}
	r := k.running(ns, pod)
	if r == nil || r.ctr != ctr {
		http.Error(w, fmt.Sprintf("container %q of pod %s/%s is not running", ctr, ns, pod), http.StatusNotFound)
		return
	}
	proto, err := httpstream.Handshake(req, w, []string{remotecommandconsts.StreamProtocolV4Name})
	// What the API server asked, for whoever debugs a session (never the
	// command: it may carry secrets).
	k.logf("exec %s %s upgrade %q protocols %q → %q", req.Method, req.URL.Path, req.Header.Get("Upgrade"),
		req.Header.Values(httpstream.HeaderProtocolVersion), proto)
	if err != nil {
		return // Handshake answered
	}
	type newStream struct {
		httpstream.Stream
		replySent <-chan struct{}
	}
	streamc := make(chan newStream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, req, func(s httpstream.Stream, replySent <-chan struct{}) error {
		select {
		case streamc <- newStream{s, replySent}:
			return nil
		default:
			return errors.New("too many streams")
		}
	})
	if conn == nil {
		return // the upgrader answered
	}
	defer conn.Close()
	conn.SetIdleTimeout(streamIdleTimeout)
	want := 1
	for _, b := range []bool{in, out, errOut} {
		if b {
			want++
		}
	}
	streams := map[string]httpstream.Stream{}
	expired := time.NewTimer(streamCreationTimeout)
	defer expired.Stop()
	for len(streams) < want {
		select {
		case s := <-streamc:
			select {
			case <-s.replySent:
			case <-expired.C:
				return
			}
			streams[s.Headers().Get(corev1.StreamType)] = s
		case <-expired.C:
			return
		}
	}
	errStream := streams[corev1.StreamTypeError]
	if errStream == nil {
		return
	}
	status := r.exec(command, streams[corev1.StreamTypeStdin], streams[corev1.StreamTypeStdout], streams[corev1.StreamTypeStderr], conn.CloseChan())
	for _, t := range []string{corev1.StreamTypeStdout, corev1.StreamTypeStderr} {
		if s := streams[t]; s != nil {
			_ = s.Close()
		}
	}
	if b, err := json.Marshal(status); err == nil {
		_, _ = errStream.Write(b)
	}
	_ = errStream.Close()
}

// logf appends a line to the folder's kubelet.log.
func (k *Kubelet) logf(format string, args ...any) {
	k.logMu.Lock()
	defer k.logMu.Unlock()
	f, err := os.OpenFile(filepath.Join(k.cp.Dir, "kubelet.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s "+format+"\n", append([]any{time.Now().Format(time.RFC3339Nano)}, args...)...)
}

// running is the pod's run, if its container runs.
func (k *Kubelet) running(ns, name string) *podRun {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.pods {
		if r.ns == ns && r.name == name && r.failed == "" && r.exit == nil && !isClosed(r.stopping) {
			return r
		}
	}
	return nil
}

// exec runs command in the pod's stand-in container and says how it
// ended, as the kubelet writes it on the v4 error stream.
func (r *podRun) exec(command []string, stdin io.Reader, stdout, stderr io.Writer, connClosed <-chan bool) metav1.Status {
	args := make([]string, len(command))
	for i, a := range command {
		args[i] = hostPath(a, r.mounts)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A background child still holding stdout must not hold the session.
	cmd.WaitDelay = 5 * time.Second
	var stdinPipe io.WriteCloser
	if stdin != nil {
		var err error
		if stdinPipe, err = cmd.StdinPipe(); err != nil {
			return internalError(err)
		}
	}
	if err := cmd.Start(); err != nil {
		// What a container runtime answers: the message on stderr, 127
		// for a missing program, 126 for one that cannot run.
		if stderr != nil {
			_, _ = fmt.Fprintf(stderr, "exec failed: %v\n", err)
		}
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return exitStatus(code)
	}
	if stdinPipe != nil {
		go func() {
			_, _ = io.Copy(stdinPipe, stdin)
			_ = stdinPipe.Close()
		}()
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		// The client gone or the pod deleted: the command dies with them.
		select {
		case <-connClosed:
		case <-r.stopping:
		case <-done:
			return
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return metav1.Status{Status: metav1.StatusSuccess}
	case errors.As(err, &ee) && ee.Exited():
		return exitStatus(ee.ExitCode())
	default:
		return internalError(err)
	}
}

func exitStatus(code int) metav1.Status {
	if code == 0 {
		return metav1.Status{Status: metav1.StatusSuccess}
	}
	return metav1.Status{Status: metav1.StatusFailure, Reason: remotecommandconsts.NonZeroExitCodeReason,
		Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: remotecommandconsts.ExitCodeCauseType, Message: fmt.Sprint(code)}}}}
}

func internalError(err error) metav1.Status {
	return apierrors.NewInternalError(fmt.Errorf("error executing command in container: %w", err)).Status()
}

// hostPath is p with a container mount path at its start replaced by
// that volume's host folder (the longest mount path that matches). A
// folder above a mount path maps to the folder above the host folder
// when the host folder ends with the same names: with /app/nocobase/storage
// on <tmp>/storage, /app/nocobase is <tmp> (so `tar -C /app/nocobase
// storage` reads the claim, as it does in a container).
func hostPath(p string, mounts map[string]string) string {
	best := ""
	for mp := range mounts {
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best != "" {
		return mounts[best] + strings.TrimPrefix(p, best)
	}
	if !filepath.IsAbs(p) {
		return p
	}
	clean := filepath.Clean(p)
	mps := make([]string, 0, len(mounts))
	for mp := range mounts {
		mps = append(mps, mp)
	}
	sort.Strings(mps)
	for _, mp := range mps {
		rel, err := filepath.Rel(clean, mp)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		if h := filepath.Clean(mounts[mp]); strings.HasSuffix(h, string(filepath.Separator)+rel) {
			return strings.TrimSuffix(h, string(filepath.Separator)+rel)
		}
	}
	return p
}
