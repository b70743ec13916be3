package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/nocobot/nocobot/config"
)

// kubeObjects decodes every object of a file of deploy/kubernetes/ as the
// API server's types, which is what kubectl apply would send.
func kubeObjects(t *testing.T, name string) []runtime.Object {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		empty := true
		for _, l := range strings.Split(string(doc), "\n") {
			if s := strings.TrimSpace(l); s != "" && !strings.HasPrefix(s, "#") {
				empty = false
			}
		}
		if empty {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, obj)
	}
	return out
}

// The Kubernetes files decode as the API's types, nocobot's own
// configuration in nocobot.yaml passes config check, it names the example
// cluster's Deployment, Service and the maintenance page's labels, and
// its backups read the storage where NocoBase's pods mount it.
func TestKubernetesFilesAgree(t *testing.T) {
	var cm *corev1.ConfigMap
	var nocobot *appsv1.Deployment
	for _, o := range kubeObjects(t, "nocobot.yaml") {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			cm = o
		case *appsv1.Deployment:
			nocobot = o
		}
	}
	if cm == nil || nocobot == nil {
		t.Fatal("nocobot.yaml: no ConfigMap or Deployment")
	}
	cfg, err := config.Parse(strings.NewReader(cm.Data["nocobot.yaml"]))
	if err != nil {
		t.Fatalf("nocobot.yaml's configuration: %v", err)
	}
	cl := cfg.Clusters[0]
	var app *appsv1.Deployment
	var svc *corev1.Service
	for _, o := range kubeObjects(t, "nocobase.yaml") {
		switch o := o.(type) {
		case *appsv1.Deployment:
			app = o
		case *corev1.Service:
			svc = o
		}
	}
	var maint *appsv1.Deployment
	for _, o := range kubeObjects(t, "maintenance.yaml") {
		if d, ok := o.(*appsv1.Deployment); ok {
			maint = d
		}
	}
	if app == nil || svc == nil || maint == nil {
		t.Fatal("nocobase.yaml or maintenance.yaml lacks its Deployment or Service")
	}
	if cl.Kubernetes.Deployment != app.Name || cl.Kubernetes.Container != app.Spec.Template.Spec.Containers[0].Name {
		t.Fatalf("configuration names %s/%s, the example deploys %s/%s", cl.Kubernetes.Deployment, cl.Kubernetes.Container, app.Name, app.Spec.Template.Spec.Containers[0].Name)
	}
	if cl.LB.Kubernetes.Service != svc.Name {
		t.Fatalf("configuration switches Service %s, the example's is %s", cl.LB.Kubernetes.Service, svc.Name)
	}
	for k, v := range cl.LB.Kubernetes.Maintenance {
		if maint.Spec.Template.Labels[k] != v {
			t.Fatalf("maintenance_selector %s=%s does not match the maintenance pods' labels %v", k, v, maint.Spec.Template.Labels)
		}
	}
	if svc.Spec.Ports[0].TargetPort.IntValue() != int(maint.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort) {
		t.Fatal("the maintenance page does not listen on the Service's target port")
	}
	// The storage is reached through a helper pod with the workload's
	// volumes, so the configured path must be where NocoBase's container
	// mounts the storage claim, and nocobot's own pod must not need it.
	onClaim := false
	ct := app.Spec.Template.Spec.Containers[0]
	for _, m := range ct.VolumeMounts {
		for _, v := range app.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.PersistentVolumeClaim != nil && m.MountPath == cl.Backup.Storage.Path {
				onClaim = true
			}
		}
	}
	if cl.Backup.Storage.HostPath != "" || !onClaim {
		t.Fatalf("backup.storage: host_path %q, path %q: want no host_path and the path of the storage claim in NocoBase's container", cl.Backup.Storage.HostPath, cl.Backup.Storage.Path)
	}
	for _, v := range nocobot.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != "nocobot-data" {
			t.Fatalf("nocobot's pod mounts claim %s: only its own data claim is needed", v.PersistentVolumeClaim.ClaimName)
		}
	}
}
