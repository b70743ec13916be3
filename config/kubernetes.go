package config

import (
	"strings"
)

// Kubernetes says where a cluster runs on Kubernetes (instead of the
// docker section): the API server, the namespace, the workload whose pods
// are the nodes, and the Service switched to the maintenance page.
type Kubernetes struct {
	// Kubeconfig is a kubeconfig file; or InCluster for the service
	// account of the pod nocobot runs in.
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
	InCluster  bool   `yaml:"in_cluster"`
	Namespace  string `yaml:"namespace"`
	// Deployment or StatefulSet names the workload; or Selector finds it
	// by its labels (exactly one of the three).
	Deployment  string            `yaml:"deployment"`
	StatefulSet string            `yaml:"statefulset"`
	Selector    map[string]string `yaml:"selector"`
	Container   string            `yaml:"container"` // the NocoBase container; default: the first
	// StartTimeout bounds a scale-up until the pods run (image pulls
	// included); default 10m.
	StartTimeout Duration `yaml:"start_timeout"`
}

// Set says whether the cluster runs on Kubernetes.
func (k *Kubernetes) Set() bool {
	return k.Kubeconfig != "" || k.InCluster || k.Namespace != "" || k.Deployment != "" || k.StatefulSet != "" || len(k.Selector) > 0
}

// KubernetesLB is the maintenance switch on Kubernetes (load_balancer.type
// kubernetes): the app Service whose selector is switched, and the labels
// of the maintenance page's pods.
type KubernetesLB struct {
	Service     string            `yaml:"service"`
	Maintenance map[string]string `yaml:"maintenance_selector"`
}

func (cl *Cluster) validateKubernetes(p *problems, f string) {
	k := cl.Kubernetes
	f += ".kubernetes"
	if k.Kubeconfig != "" && k.InCluster {
		p.add(fieldError(f, "set either kubeconfig or in_cluster, not both"))
	}
	if k.Kubeconfig == "" && !k.InCluster {
		p.add(fieldError(f+".kubeconfig", "required (or in_cluster: true when nocobot runs in the cluster)"))
	}
	if k.Namespace == "" {
		p.add(fieldError(f+".namespace", "required: the namespace NocoBase runs in"))
	}
	n := 0
	for _, set := range []bool{k.Deployment != "", k.StatefulSet != "", len(k.Selector) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		p.add(fieldError(f, "name the workload: deployment, statefulset or selector (exactly one)"))
	}
	if cl.Docker.Host != "" || len(cl.Nodes.Labels) > 0 || cl.Nodes.SwarmService != "" {
		p.add(fieldError(f, "a cluster on Kubernetes has no docker host, nodes.labels or nodes.swarm_service"))
	}
	if cl.Nodes.Migrations == "skip-same-version" {
		p.add(fieldError(f+".nodes.migrations", "skip-same-version needs an environment per node, which the pods of one workload do not have: use auto or one-at-a-time"))
	}
	if cl.Backup.Database.Container != "" || cl.Backup.Storage.Container != "" {
		p.add(fieldError(f, "backups of a cluster on Kubernetes reach the database by backup.database.url_env, and the storage through a short-lived pod that mounts the workload's volumes at backup.storage.path (or backup.storage.host_path where the storage volume is mounted into nocobot's pod): docs/operations.md"))
	}
}

func (cl *Cluster) validateKubernetesLB(p *problems, f string) {
	lb := cl.LB.Kubernetes
	if !cl.Kubernetes.Set() {
		p.add(fieldError(f+".load_balancer.type", "kubernetes needs the cluster's kubernetes section"))
	}
	if lb.Service == "" {
		p.add(fieldError(f+".load_balancer.kubernetes.service", "required: the app's Service, whose selector switches to the maintenance page"))
	}
	if len(lb.Maintenance) == 0 {
		p.add(fieldError(f+".load_balancer.kubernetes.maintenance_selector", "required: the labels of the maintenance page's pods (deploy/kubernetes/maintenance.yaml: app: nocobase-maintenance)"))
	}
	for key := range lb.Maintenance {
		if strings.TrimSpace(key) == "" {
			p.add(fieldError(f+".load_balancer.kubernetes.maintenance_selector", "empty label name"))
		}
	}
}
