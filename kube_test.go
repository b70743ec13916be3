package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nocobot/nocobot/adapters/kubernetes"
	"github.com/nocobot/nocobot/internal/kubetest"
	"github.com/nocobot/nocobot/internal/testenv"
)

// The tests in this file run the nocobot binary against a real
// kube-apiserver and kube-controller-manager (internal/kubetest plays the
// kubelet), on a NocoBase cluster deployed from deploy/kubernetes/, with
// a token bound to the Role of deploy/kubernetes/rbac.yaml and nothing
// else. The database is a real PostgreSQL database reached by URL; the
// storage is the folder behind the storage claim, which nocobot reads and
// restores through a short-lived helper pod that mounts the claim, with
// pods/exec through the API server (internal/kubetest's kubelet serves
// the exec streams).

type kubeSetup struct {
	c       *kubetest.Cluster
	conf    string
	dbURL   string
	env     []string
	storage string
}

func newKubeSetup(t *testing.T, replicas int32, version string, versions ...string) *kubeSetup {
	t.Helper()
	return newKubeSetupEnv(t, replicas, nil, version, versions...)
}

func newKubeSetupEnv(t *testing.T, replicas int32, env map[string]string, version string, versions ...string) *kubeSetup {
	t.Helper()
	return newKubeSetupWith(t, kubetest.Options{Replicas: replicas, Env: env}, version, versions...)
}

func newKubeSetupWith(t *testing.T, opts kubetest.Options, version string, versions ...string) *kubeSetup {
	t.Helper()
	env := opts.Env
	c := kubetest.NewClusterWith(t, opts, version, versions...)
	s := &kubeSetup{c: c, dbURL: testenv.NewDatabase(t), storage: c.StorageDir}
	pgExec(t, s.dbURL, "CREATE TABLE notes (id int primary key, body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 50) g")
	for name, body := range map[string]string{"uploads/a.txt": "first upload", "uploads/b/c.bin": "second upload", ".data/settings.json": `{"x":1}`} {
		p := filepath.Join(s.storage, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	repo := strings.TrimSuffix(c.Images[version], ":"+version)
	body := fmt.Sprintf(`store: {path: %s}
access: {trust_terminal: true}
clusters:
  - name: prod
    kubernetes: {kubeconfig: %s, namespace: %s, %s: nocobase, container: nocobase}
    image: {repository: %s}
    load_balancer:
      type: kubernetes
      kubernetes: {service: nocobase, maintenance_selector: {app: nocobase-maintenance}}
    backup:
      destination: %s
      database: {url_env: K8S_TEST_DB_URL, pg_bin: %s}
    timeouts: {health: 2m}
`, filepath.Join(dir, "n.db"), c.Kubeconfig, c.Namespace, c.Kind, repo, filepath.Join(dir, "backups"), testenv.PostgresBin(t))
	s.env = []string{"K8S_TEST_DB_URL=" + s.dbURL}
	if key := env["NOCOBASE_API_KEY"]; key != "" {
		body += "    nocobase: {api_key_env: K8S_TEST_API_KEY}\n"
		s.env = append(s.env, "K8S_TEST_API_KEY="+key)
	}
	s.conf = filepath.Join(dir, "nocobot.yaml")
	if err := os.WriteFile(s.conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func pgExec(t *testing.T, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// dbState is the database as a user would compare it: its tables and rows.
func dbState(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables, rows string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '') FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(id || '=' || body, ',' ORDER BY id), '') FROM notes`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	return tables + "|" + rows
}

// storageState is every file under dir with its content.
func storageState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s=%q\n", rel, data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// poller asks the app through its Service (the harness resolving the
// Service to a ready pod, as kube-proxy does) every few milliseconds and
// keeps every answer that is neither NocoBase nor the maintenance page.
type poller struct {
	mu          sync.Mutex
	bad         []string
	maint, app  int
	stop, ended chan struct{}
}

func startPoller(t *testing.T, c *kubetest.Cluster) *poller {
	p := &poller{stop: make(chan struct{}), ended: make(chan struct{})}
	hc := &http.Client{Timeout: 3 * time.Second}
	go func() {
		defer close(p.ended)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			u, err := c.CP.ServiceURL(ctx, c.Namespace, "nocobase")
			cancel()
			got := ""
			switch {
			case err != nil:
				got = "no endpoint: " + err.Error()
			default:
				res, err := hc.Get(u + "/api/__health_check")
				if err != nil {
					got = err.Error()
					break
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				switch {
				case res.StatusCode == 503 && string(body) == kubetest.MaintenanceBody:
					p.mu.Lock()
					p.maint++
					p.mu.Unlock()
				case res.StatusCode == 200 && string(body) == "ok":
					p.mu.Lock()
					p.app++
					p.mu.Unlock()
				default:
					got = fmt.Sprintf("%d %q", res.StatusCode, body)
				}
			}
			if got != "" {
				p.mu.Lock()
				p.bad = append(p.bad, time.Now().Format("15:04:05.000")+" "+got)
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(p.end)
	return p
}

func (p *poller) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.ended
}

// check ends the poller and fails on any answer that was neither page.
func (p *poller) check(t *testing.T) {
	t.Helper()
	p.end()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bad) > 0 {
		t.Fatalf("users saw %d answers that were neither NocoBase nor the maintenance page, e.g. %v", len(p.bad), p.bad[:min(5, len(p.bad))])
	}
	if p.maint == 0 || p.app == 0 {
		t.Fatalf("the poller saw the maintenance page %d times and NocoBase %d times: it should see both", p.maint, p.app)
	}
	t.Logf("through the Service: NocoBase %d times, the maintenance page %d times, nothing else", p.app, p.maint)
}

// wantCluster checks what a user and an operator would: every pod ready
// on image, the Service back on the app, nothing of nocobot's records left.
func (s *kubeSetup) wantCluster(t *testing.T, replicas int32, image string, pinned bool) {
	t.Helper()
	s.c.WaitReady(t, "app=nocobase", int(replicas))
	d, kind := s.c.Workload(t), s.c.Kind
	if d.Replicas != replicas {
		t.Fatalf("%s at %d replicas, want %d", kind, d.Replicas, replicas)
	}
	img := d.Image
	want := image + "@" + s.c.CP.Kubelet.Registry.Digest(image)
	if !strings.Contains(image, "@") && img == image && !pinned {
		want = image // never changed: as deployed
	}
	if img != want {
		t.Fatalf("%s image %s, want %s (pinned by digest)", kind, img, want)
	}
	if v, ok := d.Annotations[kubernetes.AnnotationReplicas]; ok {
		t.Fatalf("%s still records a size (%s) after the run", kind, v)
	}
	svc := s.c.Service(t)
	if svc.Spec.Selector["app"] != "nocobase" || len(svc.Spec.Selector) != 1 {
		t.Fatalf("service selector %v, want app=nocobase", svc.Spec.Selector)
	}
	if _, ok := svc.Annotations[kubernetes.AnnotationAppSelector]; ok {
		t.Fatalf("service still records an app selector after the run")
	}
}

// An upgrade answered Continue, with an HPA on the Deployment (minimum 3):
// the controller manager's autoscaler would scale the one started pod back
// to 3 unless nocobot holds its minimum at 1 meanwhile, and puts it back.
func TestKubernetesUpgradeContinue(t *testing.T) {
	s := newKubeSetup(t, 3, "1.7.13", "1.7.14")
	hpas := s.c.CP.Admin.AutoscalingV2().HorizontalPodAutoscalers(s.c.Namespace)
	three, cpu := int32(3), int32(80)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hpas.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "nocobase"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "nocobase"},
			MinReplicas:    &three, MaxReplicas: 5,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu}}}},
		}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The plan names the autoscaler the run will hold.
	pl := start(t, s.env, "plan", "upgrade", "1.7.14", "prod", "--config", s.conf)
	if c := pl.exit(t, time.Minute); c != 0 || !strings.Contains(pl.out.String(), "Autoscaler: nocobase is held at a minimum of 1") {
		t.Fatalf("plan exit %d, does not name the autoscaler:\n%s%s", c, pl.out, pl.err)
	}
	poll := startPoller(t, s.c)
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	runID(t, p)
	waitOut(t, p.out, "Choices:", 3*time.Minute)
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel()
	h, err := hpas.Get(hctx, "nocobase", metav1.GetOptions{})
	if err != nil || *h.Spec.MinReplicas != 1 || h.Annotations[kubernetes.AnnotationMinReplicas] != "3" {
		t.Fatalf("at the checkpoint the HPA is %+v (%v), want its minimum held at 1 and 3 recorded", h, err)
	}
	if n := *s.c.Deployment(t).Spec.Replicas; n != 1 {
		t.Fatalf("at the checkpoint the deployment has %d replicas, want 1", n)
	}
	io.WriteString(p.stdin, "continue\n")
	if c := p.exit(t, 3*time.Minute); c != 0 {
		t.Fatalf("upgrade exit %d\n%s%s", c, p.out, p.err)
	}
	s.wantCluster(t, 3, s.c.Images["1.7.14"], true)
	poll.check(t)
	hctx2, hcancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel2()
	h, err = hpas.Get(hctx2, "nocobase", metav1.GetOptions{})
	if _, held := h.Annotations[kubernetes.AnnotationMinReplicas]; err != nil || *h.Spec.MinReplicas != 3 || held {
		t.Fatalf("after the run the HPA is %+v (%v), want its minimum 3 again and no record", h.Spec, err)
	}
}

// An upgrade rolled back: the database and the storage folder are back
// exactly, the storage read and restored through helper pods, none of
// which is left after the run (nor the one an earlier nocobot left).
func TestKubernetesUpgradeRollBack(t *testing.T) {
	s := newKubeSetup(t, 2, "1.7.13", "1.7.14")
	db, files := dbState(t, s.dbURL), storageState(t, s.storage)
	s.leaveHelperPod(t)
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	runID(t, p)
	waitOut(t, p.out, "Choices:", 3*time.Minute)
	s.changeData(t)
	io.WriteString(p.stdin, "rollback\n")
	if c := p.exit(t, 3*time.Minute); c != 3 {
		t.Fatalf("upgrade exit %d, want 3 (rolled back)\n%s%s", c, p.out, p.err)
	}
	s.wantCluster(t, 2, s.c.Images["1.7.13"], true)
	s.wantData(t, db, files)
}

// changeData is what a new version does to the data, for a roll-back to
// undo: rows changed and deleted, a table added, a file changed and one
// added.
func (s *kubeSetup) changeData(t *testing.T) {
	t.Helper()
	pgExec(t, s.dbURL, "UPDATE notes SET body = 'migrated' WHERE id < 10; DELETE FROM notes WHERE id > 40; CREATE TABLE added (x int)")
	if err := os.WriteFile(filepath.Join(s.storage, "uploads/a.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.storage, "uploads/new.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantData checks that the database and the storage are as before the
// run (dbState, storageState), and that no storage helper pod is left.
func (s *kubeSetup) wantData(t *testing.T, db, files string) {
	t.Helper()
	if got := dbState(t, s.dbURL); got != db {
		t.Fatalf("database after the roll-back:\n%s\nwant:\n%s", got, db)
	}
	if got := storageState(t, s.storage); got != files {
		t.Fatalf("storage after the roll-back:\n%.2000s\nwant:\n%.2000s", got, files)
	}
	if pods := s.helperPods(t); len(pods) != 0 {
		t.Fatalf("helper pods left after the run: %v", pods)
	}
}

// leaveHelperPod creates a storage helper pod as a nocobot killed during
// a backup leaves it.
func (s *kubeSetup) leaveHelperPod(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "nocobase-nocobot-storage-left",
		Labels: map[string]string{kubernetes.LabelHelper: "storage", kubernetes.LabelHelperWorkload: "nocobase"}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "storage", Image: s.c.Images["1.7.13"], Command: []string{"sleep", "600"}}}}}
	if _, err := s.c.CP.Admin.CoreV1().Pods(s.c.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// helperPods are the storage helper pods that exist now.
func (s *kubeSetup) helperPods(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := s.c.CP.Admin.CoreV1().Pods(s.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelHelper})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	return out
}

// A storage folder that is not on a volume of NocoBase's container cannot
// be backed up by any pod: the run is refused before anything changes.
func TestKubernetesStorageNotOnAVolumeRefused(t *testing.T) {
	s := newKubeSetup(t, 2, "1.7.13", "1.7.14")
	conf, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(conf), "database: {url_env", "storage: {path: /app/elsewhere}\n      database: {url_env", 1)
	if err := os.WriteFile(s.conf, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := nocobotxEnv(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	if code == 0 || !strings.Contains(out+errs, "/app/elsewhere is not on a volume") {
		t.Fatalf("upgrade exit %d, want a refusal naming the folder\n%s%s", code, out, errs)
	}
	s.wantCluster(t, 2, s.c.Images["1.7.13"], false)
	if _, ok := s.c.Service(t).Annotations[kubernetes.AnnotationAppSelector]; ok {
		t.Fatal("the refused run switched the Service to the maintenance page")
	}
	if pods := s.helperPods(t); len(pods) != 0 {
		t.Fatalf("the refused run created helper pods: %v", pods)
	}
}

// maintain with a plugin enable: the workload scaled down to one pod, the
// plugin enabled there with the API key, then the rest started again.
func TestKubernetesMaintainPluginEnable(t *testing.T) {
	maintainPluginEnable(t, kubetest.Options{Replicas: 3})
}

// The same on a StatefulSet: its pod nocobase-0 is the one left running.
func TestKubernetesStatefulSetMaintainPluginEnable(t *testing.T) {
	maintainPluginEnable(t, kubetest.Options{Replicas: 3, StatefulSet: true})
}

func maintainPluginEnable(t *testing.T, opts kubetest.Options) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "plugins.log")
	opts.Env = map[string]string{"NOCOBASE_API_KEY": "k8s-test-key", "NOCOBASE_PLUGIN_LOG": log}
	s := newKubeSetupWith(t, opts, "1.7.13")
	p := start(t, s.env, "run", "maintain", "prod", "plugin", "enable", "@nocobase/plugin-map", "--config", s.conf)
	runID(t, p)
	waitOut(t, p.out, "Choices:", 3*time.Minute)
	if n := s.c.Workload(t).Replicas; n != 1 {
		t.Fatalf("at the verify checkpoint the %s has %d replicas, want 1", s.c.Kind, n)
	}
	io.WriteString(p.stdin, "continue\n")
	if c := p.exit(t, 3*time.Minute); c != 0 {
		t.Fatalf("maintain exit %d\n%s%s", c, p.out, p.err)
	}
	got, err := os.ReadFile(log)
	if err != nil || string(got) != "enable @nocobase/plugin-map\n" {
		t.Fatalf("plugin actions NocoBase saw: %q (%v), want one enable", got, err)
	}
	s.wantCluster(t, 3, s.c.Images["1.7.13"], false)
}

func TestKubernetesFirstStart(t *testing.T) {
	s := newKubeSetup(t, 3, "1.7.13")
	// A cluster deployed at 0 replicas, as before its first start.
	d := s.c.Deployment(t)
	zero := int32(0)
	d.Spec.Replicas = &zero
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Annotations = map[string]string{kubernetes.AnnotationReplicas: "3"}
	if _, err := s.c.CP.Admin.AppsV1().Deployments(s.c.Namespace).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.c.WaitReady(t, "app=nocobase", 0)
	code, out, errs := nocobotxEnv(t, s.env, "run", "start", "prod", "--config", s.conf)
	if code != 0 || !strings.Contains(out, "First start of prod succeeded") {
		t.Fatalf("start exit %d\n%s%s", code, out, errs)
	}
	s.c.WaitReady(t, "app=nocobase", 3)
	if v := s.c.Deployment(t).Annotations[kubernetes.AnnotationReplicas]; v != "" {
		t.Fatalf("deployment still records a size (%s)", v)
	}
}

// nocobot killed (SIGKILL) at three points of an upgrade, each time taken
// over by nocobot attach, which finishes it: the state left at each point
// is what docs/operations.md says (the Service on the maintenance page,
// the size recorded on the Deployment).
func TestKubernetesUpgradeKilledAndResumed(t *testing.T) {
	killedAndResumed(t, newKubeSetup(t, 3, "1.7.13", "1.7.14"))
}

// The same on an OrderedReady StatefulSet: the size is recorded on it.
func TestKubernetesStatefulSetUpgradeKilledAndResumed(t *testing.T) {
	killedAndResumed(t, newKubeSetupWith(t, kubetest.Options{Replicas: 3, StatefulSet: true}, "1.7.13", "1.7.14"))
}

func killedAndResumed(t *testing.T, s *kubeSetup) {
	t.Helper()
	poll := startPoller(t, s.c)
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	id := runID(t, p)
	kill := func(p *proc) {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.exit(t, 10*time.Second)
	}
	// 1: as the nodes start stopping (traffic on the maintenance page already).
	waitStep(t, p.out, "Stop all app nodes")
	kill(p)
	if _, ok := s.c.Service(t).Annotations[kubernetes.AnnotationAppSelector]; !ok {
		t.Fatalf("killed while stopping: the Service does not record the app's selector")
	}
	// 2: once the first node was started on the new version.
	a := start(t, s.env, "attach", id, "--config", s.conf)
	waitStep(t, a.out, "Start one node")
	s.waitReplicas(t, 1)
	kill(a)
	if v := s.c.Workload(t).Annotations[kubernetes.AnnotationReplicas]; v != "3" {
		t.Fatalf("killed while the first node starts: the %s records size %q, want 3", s.c.Kind, v)
	}
	// 3: after Continue, once the second node was started.
	a = start(t, s.env, "attach", id, "--config", s.conf)
	waitOut(t, a.out, "Choices:", 3*time.Minute)
	io.WriteString(a.stdin, "continue\n")
	waitStep(t, a.out, "Start the other nodes")
	s.waitReplicas(t, 2)
	kill(a)
	if _, ok := s.c.Service(t).Annotations[kubernetes.AnnotationAppSelector]; !ok {
		t.Fatalf("killed while the rest start: the Service does not record the app's selector")
	}
	a = start(t, s.env, "attach", id, "--config", s.conf)
	a.stdin.Close()
	if c := a.exit(t, 3*time.Minute); c != 0 {
		t.Fatalf("last attach exit %d\n%s%s", c, a.out, a.err)
	}
	s.wantCluster(t, 3, s.c.Images["1.7.14"], true)
	poll.check(t)
}

// waitStep waits until the output shows step title starting ("▶ k/n title").
func waitStep(t *testing.T, out interface{ String() string }, title string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, "▶") && strings.Contains(l, title) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %q never started:\n%s", title, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReplicas waits until the workload asks for n replicas.
func (s *kubeSetup) waitReplicas(t *testing.T, n int32) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for s.c.Workload(t).Replicas != n {
		if time.Now().After(deadline) {
			t.Fatalf("the %s never asked for %d replicas", s.c.Kind, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The Role of deploy/kubernetes/rbac.yaml is all nocobot uses: a token
// bound to it lists the nodes, and one without it is refused with a
// message naming the Role.
func TestKubernetesStatusWithTheRole(t *testing.T) {
	s := newKubeSetup(t, 2, "1.7.13")
	code, out, errs := nocobotxEnv(t, s.env, "status", "prod", "--config", s.conf)
	if code != 0 || !strings.Contains(out, "nocobase.1") || !strings.Contains(out, "nocobase.2") {
		t.Fatalf("status exit %d\n%s%s", code, out, errs)
	}
}

func nocobotxEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	p := start(t, env, args...)
	p.stdin.Close()
	code := p.exit(t, 5*time.Minute)
	return code, p.out.String(), p.err.String()
}

// nocobot killed (SIGKILL) while its storage helper pod reads the storage
// claim during the upgrade's backup: attach takes the run over, the helper
// left behind is deleted, the backup is taken again, and a roll-back then
// puts the database and the storage back exactly, with no helper pod left.
func TestKubernetesKilledDuringStorageBackup(t *testing.T) {
	s := newKubeSetup(t, 2, "1.7.13", "1.7.14")
	// Enough to read that the helper pod is seen while it works.
	big := make([]byte, 32<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	if err := os.WriteFile(filepath.Join(s.storage, "uploads/big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	db, files := dbState(t, s.dbURL), storageState(t, s.storage)
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	id := runID(t, p)
	deadline := time.Now().Add(3 * time.Minute)
	for len(s.helperPods(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no storage helper pod was ever seen:\n%s", p.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.exit(t, 10*time.Second)
	t.Logf("helper pods after the kill: %v", s.helperPods(t))
	a := start(t, s.env, "attach", id, "--config", s.conf)
	waitOut(t, a.out, "Choices:", 3*time.Minute)
	io.WriteString(a.stdin, "rollback\n")
	if c := a.exit(t, 3*time.Minute); c != 3 {
		t.Fatalf("attach exit %d, want 3 (rolled back)\n%s%s", c, a.out, a.err)
	}
	s.wantCluster(t, 2, s.c.Images["1.7.13"], true)
	s.wantData(t, db, files)
}
