package kubetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// execWith names how a client reaches pods/exec: as kubectl does
// (WebSocket, SPDY if the upgrade fails), or one protocol alone.
type execWith string

const (
	viaFallback  execWith = "fallback"
	viaWebSocket execWith = "websocket"
	viaSPDY      execWith = "spdy"
)

// podExec runs command in pod's container through the API server, as a
// client with cfg would.
func podExec(ctx context.Context, cfg *rest.Config, via execWith, ns, pod, ctr string, stdin io.Reader, command ...string) (stdout, stderr []byte, err error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: ctr, Command: command, Stdin: stdin != nil, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdyExec, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return nil, nil, err
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return nil, nil, err
	}
	var ex remotecommand.Executor
	switch via {
	case viaWebSocket:
		ex = wsExec
	case viaSPDY:
		ex = spdyExec
	default:
		if ex, err = remotecommand.NewFallbackExecutor(wsExec, spdyExec, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		}); err != nil {
			return nil, nil, err
		}
	}
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Stderr: &errOut})
	return out.Bytes(), errOut.Bytes(), err
}

// helperEnv is a namespace with a claim bound to a host folder, and an
// image of the registry.
type helperEnv struct {
	cp      *ControlPlane
	ns      string
	storage string
	image   string
}

func newHelperEnv(t testing.TB) *helperEnv {
	t.Helper()
	cp := Shared(t)
	ctx, cancel := Context()
	defer cancel()
	e := &helperEnv{cp: cp, ns: "exec-" + randHex(4), storage: filepath.Join(t.TempDir(), "storage"),
		image: cp.Kubelet.Registry.NocoBase("nocobase/nocobase", "2.2.15", "2.2.15")}
	if err := os.Mkdir(e.storage, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := Context()
		defer cancel()
		_ = cp.Admin.CoreV1().Namespaces().Delete(ctx, e.ns, metav1.DeleteOptions{})
		_ = cp.Admin.CoreV1().PersistentVolumes().Delete(ctx, e.ns+"-storage", metav1.DeleteOptions{})
	})
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: e.ns + "-storage"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: e.storage}},
		ClaimRef:               &corev1.ObjectReference{Namespace: e.ns, Name: "nocobase-storage"},
	}}
	if _, err := cp.Admin.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "nocobase-storage"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, VolumeName: pv.Name,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	if _, err := cp.Admin.CoreV1().PersistentVolumeClaims(e.ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// helperPod creates a pod as nocobot's storage helper is made: the
// workload's image and storage, a command, restartPolicy Never.
func (e *helperEnv) helperPod(t testing.TB, name string, command ...string) *corev1.Pod {
	return e.helperPodDeadline(t, name, 600, command...)
}

func (e *helperEnv) helperPodDeadline(t testing.TB, name string, deadline int64, command ...string) *corev1.Pod {
	t.Helper()
	ctx, cancel := Context()
	defer cancel()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"nocobot.io/helper": "storage"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, ActiveDeadlineSeconds: &deadline,
			Containers: []corev1.Container{{Name: "helper", Image: e.image, Command: command,
				VolumeMounts: []corev1.VolumeMount{{Name: "storage", MountPath: "/app/nocobase/storage"}}}},
			Volumes: []corev1.Volume{{Name: "storage", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "nocobase-storage"}}}}}}
	p, err := e.cp.Admin.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitPod waits until the pod's phase is phase.
func (e *helperEnv) waitPod(t testing.TB, name string, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := e.cp.Admin.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
		cancel()
		if err == nil && p.Status.Phase == phase {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not %s: %v %v", name, phase, err, p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHostPath(t *testing.T) {
	mounts := map[string]string{"/app/nocobase/storage": "/tmp/x/storage", "/app/nocobase/storage/uploads": "/srv/up", "/data": "/tmp/d1"}
	for in, want := range map[string]string{
		"/app/nocobase/storage":           "/tmp/x/storage",
		"/app/nocobase/storage/a/b":       "/tmp/x/storage/a/b",
		"/app/nocobase/storage/uploads/f": "/srv/up/f",
		"/app/nocobase":                   "/tmp/x",
		"/app/nocobase/":                  "/tmp/x",
		"/app":                            "/app", // the host folder does not end in nocobase/storage
		"/app/nocobase/storagex":          "/app/nocobase/storagex",
		"/":                               "/",
		"/data/z":                         "/tmp/d1/z",
		"storage":                         "storage",
		"-C":                              "-C",
	} {
		if got := hostPath(in, mounts); got != want {
			t.Errorf("hostPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKubernetesKubeletNodeIsReadyAndPodsBoundToIt(t *testing.T) {
	e := newHelperEnv(t)
	ctx, cancel := Context()
	defer cancel()
	e.helperPod(t, "h", "sleep", "3600")
	p := e.waitPod(t, "h", corev1.PodRunning)
	if p.Spec.NodeName != NodeName {
		t.Fatalf("pod on node %q, want %q", p.Spec.NodeName, NodeName)
	}
	n, err := e.cp.Admin.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, c := range n.Status.Conditions {
		ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
	}
	if !ready || n.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
		t.Fatalf("node not Ready or no kubelet port: %+v", n.Status)
	}
	for _, taint := range n.Spec.Taints {
		if taint.Effect == corev1.TaintEffectNoExecute {
			t.Fatalf("node tainted %v", taint)
		}
	}
	if _, err := e.cp.Admin.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, NodeName, metav1.GetOptions{}); err != nil {
		t.Fatalf("node lease: %v", err)
	}
}

func TestKubernetesKubeletExecInHelperPod(t *testing.T) {
	e := newHelperEnv(t)
	if err := os.WriteFile(filepath.Join(e.storage, "hello.txt"), []byte("hello from the claim\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.helperPod(t, "helper", "sleep", "3600")
	e.waitPod(t, "helper", corev1.PodRunning)
	cfg := e.cp.AdminCfg
	big := make([]byte, 4<<20)
	_, _ = rand.Read(big)
	for _, via := range []execWith{viaFallback, viaWebSocket, viaSPDY} {
		t.Run(string(via), func(t *testing.T) {
			ctx, cancel := Context()
			defer cancel()
			out, _, err := podExec(ctx, cfg, via, e.ns, "helper", "helper", bytes.NewReader(big), "cat")
			if err != nil || !bytes.Equal(out, big) {
				t.Fatalf("cat of 4 MiB: %d bytes back, equal %v, err %v", len(out), bytes.Equal(out, big), err)
			}
			out, errOut, err := podExec(ctx, cfg, via, e.ns, "helper", "helper", nil, "/bin/sh", "-c", "echo partial; echo 'it broke' >&2; exit 3")
			var ce utilexec.CodeExitError
			if !errors.As(err, &ce) || ce.Code != 3 || string(errOut) != "it broke\n" || string(out) != "partial\n" {
				t.Fatalf("exit 3: err %v (%T), stdout %q, stderr %q", err, err, out, errOut)
			}
			_, errOut, err = podExec(ctx, cfg, via, e.ns, "helper", "helper", nil, "no-such-program")
			if !errors.As(err, &ce) || ce.Code != 127 || len(errOut) == 0 {
				t.Fatalf("missing program: err %v, stderr %q", err, errOut)
			}
			// The script names the storage "$1"; the argument reaches the host folder.
			script := `cat "$1/hello.txt"; echo "$2" > "$1/written-$2"`
			out, _, err = podExec(ctx, cfg, via, e.ns, "helper", "helper", nil, "/bin/sh", "-c", script, "nocobot", "/app/nocobase/storage", string(via))
			if err != nil || string(out) != "hello from the claim\n" {
				t.Fatalf("script: %q, %v", out, err)
			}
			if b, err := os.ReadFile(filepath.Join(e.storage, "written-"+string(via))); err != nil || string(b) != string(via)+"\n" {
				t.Fatalf("file written through the mount path: %q, %v", b, err)
			}
		})
	}

	// A storage backup and restore as nocobot streams them: tar out, tar
	// in, from the mount path or its parent (entries under "storage/").
	ctx, cancel := Context()
	defer cancel()
	for _, form := range [][]string{{"/app/nocobase/storage", "."}, {"/app/nocobase", "storage"}} {
		out, errOut, err := podExec(ctx, cfg, viaFallback, e.ns, "helper", "helper", nil, "tar", "-cf", "-", "-C", form[0], form[1])
		if err != nil {
			t.Fatalf("tar -c -C %s %s: %v %s", form[0], form[1], err, errOut)
		}
		names := map[string]bool{}
		tr := tar.NewReader(bytes.NewReader(out))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			names[path.Clean(h.Name)] = true
		}
		if !names[path.Join(form[1], "hello.txt")] || !names[path.Join(form[1], "written-spdy")] {
			t.Fatalf("tar -C %s %s holds %v", form[0], form[1], names)
		}
	}
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	_ = tw.WriteHeader(&tar.Header{Name: "storage/restored/a.txt", Mode: 0o644, Size: 3})
	_, _ = tw.Write([]byte("abc"))
	_ = tw.Close()
	if _, errOut, err := podExec(ctx, cfg, viaFallback, e.ns, "helper", "helper", &in, "tar", "-xf", "-", "-C", "/app/nocobase"); err != nil {
		t.Fatalf("tar -x: %v %s", err, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(e.storage, "restored", "a.txt")); err != nil || string(b) != "abc" {
		t.Fatalf("restored file: %q %v", b, err)
	}

	// Deleting the helper kills its process and a running exec.
	pid := e.cp.Kubelet.pid(e.ns, "helper")
	if pid == 0 {
		t.Fatal("no process for the helper pod")
	}
	execDone := make(chan error, 1)
	go func() {
		_, _, err := podExec(ctx, cfg, viaFallback, e.ns, "helper", "helper", nil, "sleep", "3600")
		execDone <- err
	}()
	waitFor(t, "the exec'd sleep to start", func() bool { return len(childrenNamed(t, "sleep")) >= 2 })
	if err := e.cp.Admin.CoreV1().Pods(e.ns).Delete(ctx, "helper", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the helper pod to be gone", func() bool {
		_, err := e.cp.Admin.CoreV1().Pods(e.ns).Get(ctx, "helper", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("the helper's process %d still runs", pid)
	}
	if err := <-execDone; err == nil {
		t.Fatal("the exec into the deleted pod ended without an error")
	}
}

func TestKubernetesKubeletHelperPodEnds(t *testing.T) {
	e := newHelperEnv(t)
	e.helperPod(t, "ok", "/bin/sh", "-c", `test -f "$0/x" || exit 9; exit 0`, "/app/nocobase/storage")
	e.helperPod(t, "fails", "/bin/sh", "-c", "exit 2")
	e.helperPodDeadline(t, "overdue", 1, "sleep", "3600")
	if err := os.WriteFile(filepath.Join(e.storage, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := e.waitPod(t, "ok", corev1.PodSucceeded)
	failed := e.waitPod(t, "fails", corev1.PodFailed)
	if st := failed.Status.ContainerStatuses[0]; st.State.Terminated == nil || st.State.Terminated.ExitCode != 2 || st.RestartCount != 0 {
		t.Fatalf("failed helper's status %+v", st)
	}
	if st := ok.Status.ContainerStatuses[0]; st.State.Terminated == nil || st.State.Terminated.ExitCode != 0 {
		t.Fatalf("succeeded helper's status %+v", st)
	}
	if overdue := e.waitPod(t, "overdue", corev1.PodFailed); overdue.Status.Reason != "DeadlineExceeded" {
		t.Fatalf("overdue helper: %+v", overdue.Status)
	}
	ctx, cancel := Context()
	defer cancel()
	if _, _, err := podExec(ctx, e.cp.AdminCfg, viaFallback, e.ns, "ok", "helper", nil, "true"); err == nil {
		t.Fatal("exec into a finished pod worked")
	}
}

// TestKubeletExecRBAC finds which verbs on pods/exec a token needs, by
// protocol: the facts nocobot's Role is written from.
func TestKubernetesKubeletExecRBAC(t *testing.T) {
	e := newHelperEnv(t)
	e.helperPod(t, "helper", "sleep", "3600")
	e.waitPod(t, "helper", corev1.PodRunning)
	ctx, cancel := Context()
	defer cancel()
	want := map[string]map[execWith]bool{ // verbs → protocol → allowed
		"create":     {viaWebSocket: false, viaSPDY: true, viaFallback: true},
		"get":        {viaWebSocket: true, viaSPDY: false, viaFallback: true},
		"create,get": {viaWebSocket: true, viaSPDY: true, viaFallback: true},
	}
	for verbs, byVia := range want {
		name := "sa-" + strings.ReplaceAll(verbs, ",", "-")
		a := e.cp.Admin
		if _, err := a.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: strings.Split(verbs, ",")}}}
		if _, err := a.RbacV1().Roles(e.ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: e.ns}}}
		if _, err := a.RbacV1().RoleBindings(e.ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		exp := int64(600)
		tok, err := a.CoreV1().ServiceAccounts(e.ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.cp.Config(tok.Status.Token)
		for _, via := range []execWith{viaWebSocket, viaSPDY, viaFallback} {
			var out []byte
			var err error
			// The binding reaches the authorizer's cache within a moment.
			for i := 0; i < 50; i++ {
				out, _, err = podExec(ctx, cfg, via, e.ns, "helper", "helper", nil, "echo", "ok")
				if err == nil || !byVia[via] {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			allowed := err == nil && string(out) == "ok\n"
			t.Logf("pods/exec verbs [%s], %s: allowed %v (%v)", verbs, via, allowed, err)
			if allowed != byVia[via] {
				t.Errorf("pods/exec verbs [%s], %s: allowed %v, want %v (%v)", verbs, via, allowed, byVia[via], err)
			}
		}
	}
}

// pid is the process of the pod's container (0 if none).
func (k *Kubelet) pid(ns, name string) int {
	r := k.running(ns, name)
	if r == nil || r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// childrenNamed lists the processes named name whose parent is this
// test binary (the kubelet's).
func childrenNamed(t *testing.T, name string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		if f := strings.Fields(string(stat)); len(f) > 3 && f[1] == "("+name+")" && f[3] == strconv.Itoa(os.Getpid()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkKubernetesKubeletExecRead measures a storage read's path: bytes out of
// a helper pod's stdout through the API server, per protocol.
//
//	NOCOBOT_TEST_K8S_BIN=… go test -run '^$' -bench KubeletExecRead -benchtime 5x ./internal/kubetest/
func BenchmarkKubernetesKubeletExecRead(b *testing.B) {
	e := newHelperEnv(b)
	e.helperPod(b, "helper", "sleep", "3600")
	e.waitPod(b, "helper", corev1.PodRunning)
	const size = 64 << 20
	for _, via := range []execWith{viaWebSocket, viaSPDY} {
		b.Run(string(via), func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				ctx, cancel := Context()
				out, _, err := podExec(ctx, e.cp.AdminCfg, via, e.ns, "helper", "helper", nil, "head", "-c", strconv.Itoa(size), "/dev/zero")
				cancel()
				if err != nil || len(out) != size {
					b.Fatalf("%d bytes, %v", len(out), err)
				}
			}
		})
	}
}
