package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Kubelet plays the kubelet (and the scheduler) for every pod of the
// control plane: a new pod gets an address of its own on loopback
// (127.x.y.z, so each pod listens on the port its spec says, like a pod
// on its own network), its image is looked up in the test registry, and
// its program is run: a stand-in NocoBase process (internal/fakenocobase)
// for a NocoBase image, a 503 page for the maintenance image. The pod is
// then patched Running, with the image's digest in its container status;
// its readiness probe (an HTTP GET) is asked as the kubelet would, and
// the Ready condition follows. A pod being deleted has its process
// stopped (SIGTERM), then is removed. A process that exits is started
// again or not as the pod's restartPolicy says; with Never (or OnFailure
// and exit code 0) the pod ends Succeeded or Failed. A container with a
// command (a helper pod: `sleep 3600`) runs that command as a process of
// this host instead of the image's program, its paths mapped as exec's
// are (exec.go). activeDeadlineSeconds is kept.
//
// The kubelet registers a node (node.go) and binds every new pod to it,
// as the scheduler would, so that the API server sends pods/exec to its
// HTTPS endpoint (exec.go).
type Kubelet struct {
	cp          *ControlPlane
	Registry    *Registry
	fakeBin     string
	mu          sync.Mutex
	pods        map[types.UID]*podRun
	nextIP      int
	stopc       chan struct{}
	done        chan struct{}
	server      *http.Server
	kubeletPort int
	nodeSince   metav1.Time
	logMu       sync.Mutex
}

type podRun struct {
	ns, name string
	uid      types.UID
	ip       string
	cmd      *exec.Cmd
	exited   chan struct{}
	server   *http.Server
	ready    bool
	restarts int32
	imageID  string
	image    string
	ctr      string
	probe    *corev1.HTTPGetAction
	port     int
	env      []string
	args     []string
	failed   string            // why the image cannot run (the pod stays Pending with a waiting reason)
	mounts   map[string]string // container mount path → host folder
	dir      string            // the working directory of its processes
	hostCmd  []string          // the container's command, paths mapped; none: the image's program
	policy   corev1.RestartPolicy
	deadline time.Time // activeDeadlineSeconds after the start, if set
	started  metav1.Time
	exit     *int32 // the container ended for good (restartPolicy) with this code
	reason   string // why it ended: Completed, Error, DeadlineExceeded
	stopping chan struct{}
}

func newKubelet(cp *ControlPlane) *Kubelet {
	return &Kubelet{cp: cp, pods: map[types.UID]*podRun{}, nextIP: int(time.Now().UnixNano()%200) * 256, stopc: make(chan struct{}), done: make(chan struct{}),
		nodeSince: metav1.Now()}
}

func (k *Kubelet) start() error {
	reg, err := newRegistry()
	if err != nil {
		return err
	}
	k.Registry = reg
	k.fakeBin = filepath.Join(k.cp.Dir, "fakenocobase")
	if out, err := exec.Command("go", "build", "-o", k.fakeBin, "github.com/nocobot/nocobot/internal/fakenocobase").CombinedOutput(); err != nil {
		return fmt.Errorf("build fakenocobase: %v: %s", err, out)
	}
	port, err := k.startServer()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.registerNode(ctx, port); err != nil {
		return err
	}
	go k.heartbeats()
	go k.loop()
	return nil
}

func (k *Kubelet) stop() {
	close(k.stopc)
	<-k.done
	if k.server != nil {
		_ = k.server.Close()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.pods {
		r.kill()
	}
	k.Registry.close()
}

func (k *Kubelet) loop() {
	defer close(k.done)
	for {
		select {
		case <-k.stopc:
			return
		case <-time.After(100 * time.Millisecond):
		}
		k.sync()
	}
}

// sync brings every pod one step closer to what its object says.
func (k *Kubelet) sync() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := k.cp.Admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	seen := map[types.UID]bool{}
	for i := range list.Items {
		p := &list.Items[i]
		seen[p.UID] = true
		k.mu.Lock()
		r := k.pods[p.UID]
		k.mu.Unlock()
		switch {
		case p.DeletionTimestamp != nil:
			if r != nil {
				r.kill()
				k.mu.Lock()
				delete(k.pods, p.UID)
				k.mu.Unlock()
			}
			zero := int64(0)
			_ = k.cp.Admin.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
		case r == nil:
			if p.Spec.NodeName == "" {
				if err := k.bind(ctx, p); err != nil {
					continue // bound by the next round
				}
			}
			r = k.run(p)
			k.mu.Lock()
			k.pods[p.UID] = r
			k.mu.Unlock()
			k.report(ctx, r)
		case r.failed != "" || r.exit != nil:
		default:
			changed := false
			if !r.deadline.IsZero() && time.Now().After(r.deadline) {
				r.kill()
				r.ready = false
				k.end(r, 137, "DeadlineExceeded")
				k.report(ctx, r)
				continue
			}
			if r.exited != nil && isClosed(r.exited) {
				code := r.exitCode()
				r.ready = false
				changed = true
				switch {
				case r.policy == corev1.RestartPolicyNever && code != 0:
					k.end(r, code, "Error")
				case r.policy == corev1.RestartPolicyNever, r.policy == corev1.RestartPolicyOnFailure && code == 0:
					k.end(r, code, "Completed")
				default:
					r.restarts++
					k.launch(r)
				}
			}
			if ready := r.probeReady(); ready != r.ready {
				r.ready = ready
				changed = true
			}
			if changed {
				k.report(ctx, r)
			}
		}
	}
	k.mu.Lock()
	for uid, r := range k.pods {
		if !seen[uid] {
			r.kill()
			delete(k.pods, uid)
		}
	}
	k.mu.Unlock()
}

// end marks the pod's container ended for good (exec reads it).
func (k *Kubelet) end(r *podRun, code int, reason string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := int32(code)
	r.exit, r.reason = &c, reason
}

// run starts a new pod's program.
func (k *Kubelet) run(p *corev1.Pod) *podRun {
	k.mu.Lock()
	k.nextIP++
	n := k.nextIP
	k.mu.Unlock()
	r := &podRun{ns: p.Namespace, name: p.Name, uid: p.UID, ip: fmt.Sprintf("127.%d.%d.%d", 10+(n>>16)%200, (n>>8)%256, 1+n%250),
		policy: p.Spec.RestartPolicy, started: metav1.Now(), stopping: make(chan struct{})}
	if d := p.Spec.ActiveDeadlineSeconds; d != nil {
		r.deadline = time.Now().Add(time.Duration(*d) * time.Second)
	}
	if len(p.Spec.Containers) == 0 {
		r.failed = "no container"
		return r
	}
	ct := p.Spec.Containers[0]
	r.ctr, r.image = ct.Name, ct.Image
	if ct.ReadinessProbe != nil && ct.ReadinessProbe.HTTPGet != nil {
		r.probe = ct.ReadinessProbe.HTTPGet
	}
	img, ok := k.Registry.lookup(ct.Image)
	if !ok {
		r.failed = "ErrImagePull"
		return r
	}
	r.imageID = img.repoRef + "@" + img.digest
	r.port = 13000
	if len(ct.Ports) > 0 {
		r.port = int(ct.Ports[0].ContainerPort)
	}
	r.mounts = hostMounts(p, ct, k)
	for _, e := range ct.Env {
		r.env = append(r.env, e.Name+"="+hostPath(e.Value, r.mounts))
	}
	// The container's own file system: an empty folder of the pod's, or
	// the working directory's volume.
	r.dir = filepath.Join(k.cp.Dir, "pod-"+r.ns+"-"+r.name+"-"+string(r.uid))
	_ = os.MkdirAll(r.dir, 0o755)
	if ct.WorkingDir != "" {
		if d := hostPath(ct.WorkingDir, r.mounts); d != ct.WorkingDir {
			r.dir = d
		}
	}
	if len(ct.Command) > 0 {
		for _, a := range append(append([]string{}, ct.Command...), ct.Args...) {
			r.hostCmd = append(r.hostCmd, hostPath(a, r.mounts))
		}
		k.launch(r)
		r.ready = r.probe == nil
		return r
	}
	if img.kind == kindMaintenance {
		r.server = maintenancePage(net.JoinHostPort(r.ip, strconv.Itoa(r.port)))
		r.ready = r.probe == nil
		return r
	}
	r.args = []string{"-listen", net.JoinHostPort(r.ip, strconv.Itoa(r.port)), "-version", img.version}
	k.launch(r)
	r.ready = r.probe == nil
	return r
}

// hostMounts maps the container's mount paths to host folders: hostPath
// volumes, and claims bound to hostPath volumes.
func hostMounts(p *corev1.Pod, ct corev1.Container, k *Kubelet) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vols := map[string]string{}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.HostPath != nil:
			vols[v.Name] = v.HostPath.Path
		case v.PersistentVolumeClaim != nil:
			pvc, err := k.cp.Admin.CoreV1().PersistentVolumeClaims(p.Namespace).Get(ctx, v.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
			if err != nil || pvc.Spec.VolumeName == "" {
				continue
			}
			pv, err := k.cp.Admin.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
			if err == nil && pv.Spec.HostPath != nil {
				vols[v.Name] = pv.Spec.HostPath.Path
			}
		}
	}
	out := map[string]string{}
	for _, m := range ct.VolumeMounts {
		if hp, ok := vols[m.Name]; ok {
			out[filepath.Clean(m.MountPath)] = filepath.Join(hp, m.SubPath)
		}
	}
	return out
}

func (k *Kubelet) launch(r *podRun) {
	cmd := exec.Command(k.fakeBin, r.args...)
	if len(r.hostCmd) > 0 {
		cmd = exec.Command(r.hostCmd[0], r.hostCmd[1:]...)
		cmd.Dir = r.dir
	}
	cmd.Env = append(os.Environ(), r.env...)
	logf, _ := os.OpenFile(filepath.Join(k.cp.Dir, "pod-"+r.ns+"-"+r.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r.exited = make(chan struct{})
	r.cmd = cmd
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "start: %v\n", err)
		logf.Close()
		close(r.exited)
		return
	}
	exited := r.exited
	go func() {
		_ = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(exited)
	}()
}

// exitCode is how the last process ended (128 if it never started).
func (r *podRun) exitCode() int {
	if r.cmd == nil || r.cmd.ProcessState == nil {
		return 128
	}
	if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return r.cmd.ProcessState.ExitCode()
}

// kill stops the pod's processes, its program's and exec's: SIGTERM to
// the process group, SIGKILL after 5 s.
func (r *podRun) kill() {
	if r.stopping != nil && !isClosed(r.stopping) {
		close(r.stopping)
	}
	if r.server != nil {
		_ = r.server.Close()
	}
	if r.cmd != nil && r.cmd.Process != nil && !isClosed(r.exited) {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
		}
	}
}

// probeReady asks the readiness probe once.
func (r *podRun) probeReady() bool {
	if r.probe == nil {
		return r.cmd == nil || !isClosed(r.exited)
	}
	port := r.port
	if r.probe.Port.IntValue() > 0 {
		port = r.probe.Port.IntValue()
	}
	hc := http.Client{Timeout: time.Second}
	res, err := hc.Get("http://" + net.JoinHostPort(r.ip, strconv.Itoa(port)) + r.probe.Path)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 400
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// report writes the pod's status as a kubelet would.
func (k *Kubelet) report(ctx context.Context, r *podRun) {
	now := metav1.Now()
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
	}
	var st corev1.PodStatus
	if r.failed != "" {
		st = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{cond(corev1.PodScheduled, true)},
			ContainerStatuses: []corev1.ContainerStatus{{Name: r.ctr, Image: r.image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: r.failed, Message: "no image " + r.image + " in the registry"}}}}}
	} else if r.exit != nil {
		phase := corev1.PodSucceeded
		if *r.exit != 0 {
			phase = corev1.PodFailed
		}
		st = corev1.PodStatus{Phase: phase, PodIP: r.ip, PodIPs: []corev1.PodIP{{IP: r.ip}}, HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}},
			StartTime: &r.started, Conditions: []corev1.PodCondition{cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
				cond(corev1.ContainersReady, false), cond(corev1.PodReady, false)},
			ContainerStatuses: []corev1.ContainerStatus{{Name: r.ctr, Image: r.image, ImageID: r.imageID, RestartCount: r.restarts,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: *r.exit, Reason: r.reason, StartedAt: r.started, FinishedAt: now}}}}}
		if r.reason == "DeadlineExceeded" {
			st.Reason, st.Message = "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
		}
	} else {
		st = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: r.ip, PodIPs: []corev1.PodIP{{IP: r.ip}}, HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}}, StartTime: &r.started,
			Conditions: []corev1.PodCondition{cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
				cond(corev1.ContainersReady, r.ready), cond(corev1.PodReady, r.ready)},
			ContainerStatuses: []corev1.ContainerStatus{{Name: r.ctr, Image: r.image, ImageID: r.imageID, Ready: r.ready, RestartCount: r.restarts,
				Started: &r.ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}}
	}
	body, _ := json.Marshal(map[string]any{"status": st})
	_, _ = k.cp.Admin.CoreV1().Pods(r.ns).Patch(ctx, r.name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
}

// maintenancePage serves the maintenance page: 503 for every path, like
// deploy/kubernetes/maintenance.yaml's nginx.
func maintenancePage(addr string) *http.Server {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Retry-After", "120")
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(MaintenanceBody))
	})}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		go func() { _ = srv.Serve(ln) }()
	}
	return srv
}

// MaintenanceBody is what the maintenance page answers.
const MaintenanceBody = "<html><body><h1>Down for maintenance</h1></body></html>\n"
