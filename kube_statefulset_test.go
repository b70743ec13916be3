package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nocobot/nocobot/adapters/kubernetes"
	"github.com/nocobot/nocobot/internal/kubetest"
)

// The same procedures on the example NocoBase deployed as a StatefulSet:
// its pods are nocobase-0, -1, -2, the storage claim shared in the pod
// template's volumes (NocoBase's nodes share one storage folder).

// wantPods checks the pods a user lists: exactly names, each ready on
// image (pinned by digest).
func (s *kubeSetup) wantPods(t *testing.T, image string, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := s.c.CP.Admin.CoreV1().Pods(s.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=nocobase"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	want := image + "@" + s.c.CP.Kubelet.Registry.Digest(image)
	for _, p := range l.Items {
		got = append(got, p.Name)
		if img := p.Spec.Containers[0].Image; img != want {
			t.Errorf("pod %s runs %s, want %s", p.Name, img, want)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Fatalf("pods %v, want %v", got, names)
	}
}

// An upgrade answered Continue on an OrderedReady StatefulSet, whose
// rolling update partition (3) would keep every existing ordinal on the
// old revision: the image changes at 0 replicas, where the controller
// makes the new template current at once, and nocobot waits for that
// before it scales up, so every pod starts on the new version. Scaling
// 1→3 with OrderedReady makes each pod wait for the one before it to be
// Ready; the run waits for all of them.
func TestKubernetesStatefulSetUpgradeContinue(t *testing.T) {
	three := int32(3)
	s := newKubeSetupWith(t, kubetest.Options{Replicas: 3, StatefulSet: true, Partition: &three}, "1.7.13", "1.7.14")
	// status names the pods, each with the version it answers.
	code, out, errs := nocobotxEnv(t, s.env, "status", "prod", "--config", s.conf)
	for _, p := range []string{"nocobase-0", "nocobase-1", "nocobase-2"} {
		if code != 0 || !strings.Contains(out, p+": running") || strings.Contains(out, "nocobase.1") {
			t.Fatalf("status exit %d, does not name pod %s:\n%s%s", code, p, out, errs)
		}
	}
	if !strings.Contains(out, "version 1.7.13") {
		t.Fatalf("status does not show the version:\n%s", out)
	}
	poll := startPoller(t, s.c)
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	runID(t, p)
	waitOut(t, p.out, "Choices:", 3*time.Minute)
	if n := s.c.Workload(t).Replicas; n != 1 {
		t.Fatalf("at the checkpoint the statefulset has %d replicas, want 1", n)
	}
	s.wantPods(t, s.c.Images["1.7.14"], "nocobase-0")
	io.WriteString(p.stdin, "continue\n")
	if c := p.exit(t, 3*time.Minute); c != 0 {
		t.Fatalf("upgrade exit %d\n%s%s", c, p.out, p.err)
	}
	s.wantCluster(t, 3, s.c.Images["1.7.14"], true)
	s.wantPods(t, s.c.Images["1.7.14"], "nocobase-0", "nocobase-1", "nocobase-2")
	poll.check(t)
	st := s.c.StatefulSet(t)
	if st.Status.CurrentRevision != st.Status.UpdateRevision {
		t.Fatalf("statefulset revisions after the run: current %s, update %s: a rolling update is still pending", st.Status.CurrentRevision, st.Status.UpdateRevision)
	}
	code, out, errs = nocobotxEnv(t, s.env, "status", "prod", "--config", s.conf)
	if code != 0 || strings.Count(out, "version 1.7.14") != 3 {
		t.Fatalf("status after the upgrade exit %d, want three pods on 1.7.14:\n%s%s", code, out, errs)
	}
}

// A roll-back on a StatefulSet with Parallel pod management: the
// database and storage back exactly as they were, the old image pinned by
// digest, the size restored.
func TestKubernetesStatefulSetUpgradeRollBack(t *testing.T) {
	s := newKubeSetupWith(t, kubetest.Options{Replicas: 3, StatefulSet: true, PodManagement: appsv1.ParallelPodManagement}, "1.7.13", "1.7.14")
	db, files := dbState(t, s.dbURL), storageState(t, s.storage)
	poll := startPoller(t, s.c)
	p := start(t, s.env, "run", "upgrade", "1.7.14", "prod", "--config", s.conf)
	runID(t, p)
	waitOut(t, p.out, "Choices:", 3*time.Minute)
	s.wantPods(t, s.c.Images["1.7.14"], "nocobase-0")
	s.changeData(t)
	io.WriteString(p.stdin, "rollback\n")
	if c := p.exit(t, 3*time.Minute); c != 3 {
		t.Fatalf("upgrade exit %d, want 3 (rolled back)\n%s%s", c, p.out, p.err)
	}
	s.wantCluster(t, 3, s.c.Images["1.7.13"], true)
	s.wantPods(t, s.c.Images["1.7.13"], "nocobase-0", "nocobase-1", "nocobase-2")
	poll.check(t)
	s.wantData(t, db, files)
}

// With OrderedReady, the StatefulSet controller removes a pod only while
// the pods below it are Ready (or it is the lowest that is not): a stop
// of several unready pods cannot finish, and says which pods are left and
// what to do, instead of a bare timeout.
func TestKubernetesStatefulSetStopUnreadyPods(t *testing.T) {
	c := kubetest.NewClusterWith(t, kubetest.Options{Replicas: 3, StatefulSet: true}, "1.7.13")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Pods 0 and 1 stop being Ready (as when their database is gone).
	for _, name := range []string{"nocobase-0", "nocobase-1"} {
		body := []byte(`{"status":{"conditions":[{"type":"Ready","status":"False"}]}}`)
		if _, err := c.CP.Admin.CoreV1().Pods(c.Namespace).Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
	}
	client, err := kubernetes.Connect(kubernetes.Options{Kubeconfig: c.Kubeconfig, Namespace: c.Namespace, StatefulSet: "nocobase", StopTimeout: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	err = kubernetes.NewNodes(client).Stop(ctx, "nocobase-0")
	for _, want := range []string{"nocobase-0: stop: 2 pods left after 5s, want at most 0 (nocobase-0 Running, not Ready, nocobase-1 Running, not Ready)",
		"OrderedReady", "kubectl delete pod"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("stop of unready pods: %v, want it to say %q", err, want)
		}
	}
}

// The image changed at 0 replicas, then every node started at once: with
// a partition of 3, a pod made before the controller took in the new
// template would start from the old revision; nocobot waits for it, so
// every pod runs the new image.
func TestKubernetesStatefulSetImageThenStart(t *testing.T) {
	three := int32(3)
	c := kubetest.NewClusterWith(t, kubetest.Options{Replicas: 3, StatefulSet: true, Partition: &three}, "1.7.13", "1.7.14")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := kubernetes.Connect(kubernetes.Options{Kubeconfig: c.Kubeconfig, Namespace: c.Namespace, StatefulSet: "nocobase"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	nodes := kubernetes.NewNodes(client)
	if err := nodes.Stop(ctx, "nocobase-0"); err != nil {
		t.Fatal(err)
	}
	if err := nodes.SetImage(ctx, "nocobase-0", c.Images["1.7.14"]); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Start(ctx, "nocobase-2"); err != nil {
		t.Fatal(err)
	}
	s := &kubeSetup{c: c}
	s.wantPods(t, c.Images["1.7.14"], "nocobase-0", "nocobase-1", "nocobase-2")
}
