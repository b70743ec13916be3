package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// Cluster is a NocoBase cluster deployed into a namespace of its own from
// deploy/kubernetes/ (nocobase.yaml, maintenance.yaml, rbac.yaml), with
// the images of the test registry, the storage claim bound to a folder of
// this host, and a kubeconfig whose token is nocobot's service account's,
// bound to the Role of rbac.yaml and nothing else.
type Cluster struct {
	CP         *ControlPlane
	Namespace  string
	Kubeconfig string // nocobot's
	StorageDir string // the storage claim's folder, <tmp>/storage
	Images     map[string]string
	// Kind is the NocoBase workload's: "deployment" or "statefulset".
	Kind string
}

// Options says how to deploy the example NocoBase.
type Options struct {
	Replicas int32
	// Env is added to the NocoBase container's environment (the
	// stand-in's settings, such as NOCOBASE_API_KEY).
	Env map[string]string
	// StatefulSet deploys the example as a StatefulSet named nocobase
	// instead of its Deployment: the same pod template, the shared
	// storage claim in its volumes (NocoBase's nodes share one storage
	// folder, so no volumeClaimTemplates), serviceName nocobase.
	StatefulSet bool
	// PodManagement is the StatefulSet's podManagementPolicy (default
	// OrderedReady: each pod waits for the one before it to be Ready).
	PodManagement appsv1.PodManagementPolicyType
	// Partition is the StatefulSet's rolling update partition.
	Partition *int32
}

var nsSeq atomic.Int64

// RepoFile is a file of the repository, by its path there.
func RepoFile(t testing.TB, rel string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), rel)
}

// NewCluster deploys NocoBase version on replicas pods; versions are
// the NocoBase images the registry holds (tag = version).
func NewCluster(t testing.TB, replicas int32, version string, versions ...string) *Cluster {
	t.Helper()
	return NewClusterEnv(t, replicas, nil, version, versions...)
}

// NewClusterEnv is NewCluster with env added to the NocoBase container's
// environment (the stand-in's settings, such as NOCOBASE_API_KEY).
func NewClusterEnv(t testing.TB, replicas int32, env map[string]string, version string, versions ...string) *Cluster {
	t.Helper()
	return NewClusterWith(t, Options{Replicas: replicas, Env: env}, version, versions...)
}

// NewClusterWith deploys NocoBase version as opts say; versions are the
// NocoBase images the registry holds (tag = version).
func NewClusterWith(t testing.TB, opts Options, version string, versions ...string) *Cluster {
	t.Helper()
	replicas, env := opts.Replicas, opts.Env
	cp := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &Cluster{CP: cp, Namespace: fmt.Sprintf("t%d-%d", os.Getpid(), nsSeq.Add(1)), Images: map[string]string{}, Kind: "deployment",
		// Named as in the container, so that its parent stands for
		// /app/nocobase in helper pods (exec.go's hostPath).
		StorageDir: filepath.Join(t.TempDir(), "storage")}
	if opts.StatefulSet {
		c.Kind = "statefulset"
	}
	if err := os.Mkdir(c.StorageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range append([]string{version}, versions...) {
		c.Images[v] = cp.Kubelet.Registry.NocoBase("nocobase/nocobase", v, v)
	}
	maint := cp.Kubelet.Registry.Maintenance("nocobot/maintenance", "1")
	if _, err := cp.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cp.Admin.CoreV1().Namespaces().Delete(ctx, c.Namespace, metav1.DeleteOptions{})
		_ = cp.Admin.CoreV1().PersistentVolumes().Delete(ctx, c.Namespace+"-storage", metav1.DeleteOptions{})
	})
	// The storage: a hostPath volume bound to the claim nocobase.yaml names.
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace + "-storage"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("20Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: c.StorageDir}},
		ClaimRef:               &corev1.ObjectReference{Namespace: c.Namespace, Name: "nocobase-storage"},
	}}
	if _, err := cp.Admin.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rbac.yaml", "nocobase.yaml", "maintenance.yaml"} {
		c.apply(ctx, t, RepoFile(t, filepath.Join("deploy", "kubernetes", f)), func(o runtime.Object) runtime.Object {
			switch o := o.(type) {
			case *appsv1.Deployment:
				if o.Name == "nocobase" {
					o.Spec.Replicas = &replicas
					o.Spec.Template.Spec.Containers[0].Image = c.Images[version]
					// The stand-in boots in a second, not minutes.
					o.Spec.Template.Spec.Containers[0].Env = append(o.Spec.Template.Spec.Containers[0].Env,
						corev1.EnvVar{Name: "NOCOBASE_BOOT_TIME", Value: "1s"})
					for k, v := range env {
						o.Spec.Template.Spec.Containers[0].Env = append(o.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: k, Value: v})
					}
					if opts.StatefulSet {
						return statefulSet(o, opts)
					}
				} else {
					o.Spec.Template.Spec.Containers[0].Image = maint
				}
			case *corev1.PersistentVolumeClaim:
				o.Spec.VolumeName = pv.Name
			}
			return o
		})
	}
	// nocobot's token: its service account's, bound by rbac.yaml only.
	exp := int64(3600)
	tok, err := cp.Admin.CoreV1().ServiceAccounts(c.Namespace).CreateToken(ctx, "nocobot", &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, []byte(cp.Kubeconfig(tok.Status.Token, c.Namespace)), 0o600); err != nil {
		t.Fatal(err)
	}
	c.WaitReady(t, "app=nocobase", int(replicas))
	c.WaitReady(t, "app=nocobase-maintenance", 1)
	return c
}

// statefulSet is the example's Deployment made a StatefulSet.
func statefulSet(d *appsv1.Deployment, opts Options) *appsv1.StatefulSet {
	pm := opts.PodManagement
	if pm == "" {
		pm = appsv1.OrderedReadyPodManagement
	}
	return &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{
		Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template,
		ServiceName: "nocobase", PodManagementPolicy: pm,
		UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: opts.Partition}},
	}}
}

// apply creates every object of a YAML file in the namespace, after edit.
func (c *Cluster) apply(ctx context.Context, t testing.TB, path string, edit func(runtime.Object) runtime.Object) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		obj = edit(obj)
		a := c.CP.Admin
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = a.CoreV1().ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = a.RbacV1().Roles(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			for i := range o.Subjects {
				o.Subjects[i].Namespace = ns
			}
			_, err = a.RbacV1().RoleBindings(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			_, err = a.CoreV1().ConfigMaps(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.PersistentVolumeClaim:
			_, err = a.CoreV1().PersistentVolumeClaims(ns).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			_, err = a.AppsV1().Deployments(ns).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.StatefulSet:
			_, err = a.AppsV1().StatefulSets(ns).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = a.CoreV1().Services(ns).Create(ctx, o, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, err = a.NetworkingV1().Ingresses(ns).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("%s: no way to apply %T", path, obj)
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// WaitReady waits until n pods matching selector are Ready and no other
// pod matching it is left.
func (c *Cluster) WaitReady(t testing.TB, selector string, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pods, err := c.CP.Admin.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		cancel()
		ready := 0
		if err == nil {
			for _, p := range pods.Items {
				for _, cd := range p.Status.Conditions {
					if cd.Type == corev1.PodReady && cd.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
						ready++
					}
				}
			}
			if ready == n && len(pods.Items) == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d pods ready (%d in all), err %v; logs in %s", selector, ready, n, len(pods.Items), err, c.CP.Dir)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Deployment reads the nocobase Deployment.
func (c *Cluster) Deployment(t testing.TB) *appsv1.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := c.CP.Admin.AppsV1().Deployments(c.Namespace).Get(ctx, "nocobase", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Workload is what a user checks of the nocobase workload, whichever
// its kind.
type Workload struct {
	Replicas    int32
	Image       string
	Annotations map[string]string
}

// Workload reads the nocobase Deployment or StatefulSet.
func (c *Cluster) Workload(t testing.TB) Workload {
	t.Helper()
	if c.Kind == "deployment" {
		d := c.Deployment(t)
		return Workload{Replicas: *d.Spec.Replicas, Image: d.Spec.Template.Spec.Containers[0].Image, Annotations: d.Annotations}
	}
	s := c.StatefulSet(t)
	return Workload{Replicas: *s.Spec.Replicas, Image: s.Spec.Template.Spec.Containers[0].Image, Annotations: s.Annotations}
}

// StatefulSet reads the nocobase StatefulSet.
func (c *Cluster) StatefulSet(t testing.TB) *appsv1.StatefulSet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.CP.Admin.AppsV1().StatefulSets(c.Namespace).Get(ctx, "nocobase", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Service reads the nocobase Service.
func (c *Cluster) Service(t testing.TB) *corev1.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.CP.Admin.CoreV1().Services(c.Namespace).Get(ctx, "nocobase", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
