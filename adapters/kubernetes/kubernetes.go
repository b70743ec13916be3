// Package kubernetes drives a NocoBase cluster that runs on Kubernetes as
// one Deployment (or StatefulSet), the way NocoBase's cluster
// documentation deploys it, through the same ports as the Docker and
// Swarm adapters:
//
//   - the nodes are the workload's pods, addressed by position like the
//     slots of a Swarm service ("<workload>.1" is the oldest running pod,
//     and so on up to the workload's full size; a StatefulSet's nodes
//     are its pods by name, "<workload>-0" and on); the node operations
//     scale the workload, never delete pods, so the controllers never
//     fight the procedure (nodes.go);
//   - an image change patches the container's image, pinned by digest,
//     only while the workload is at 0 replicas (image.go); a StatefulSet
//     is scaled up from 0 only once its controller has made that template
//     its current revision (workload.go);
//   - a HorizontalPodAutoscaler on the workload is paused while nodes are
//     down: its minimum is recorded on it and restored (hpa.go);
//   - the maintenance page is switched by the app Service's selector,
//     the app's own selector recorded on the Service itself (service.go).
//
// Everything recorded lives on the objects it belongs to, in one update
// with the change it records, so a nocobot killed at any point finds on
// the next call what it needs to finish or undo.
package kubernetes

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Annotations nocobot keeps on the objects it changes.
const (
	// AnnotationReplicas on the workload: its full size while nocobot has
	// scaled it down (removed once it is back to that size).
	AnnotationReplicas = "nocobot.io/replicas"
	// AnnotationPreviousImage on the workload: the image before the last
	// image change.
	AnnotationPreviousImage = "nocobot.io/previous-image"
	// AnnotationMinReplicas on an HPA: its minimum while nocobot holds it
	// at 1.
	AnnotationMinReplicas = "nocobot.io/min-replicas"
	// AnnotationAppSelector on the app Service: its own selector (JSON)
	// while it points at the maintenance page.
	AnnotationAppSelector = "nocobot.io/app-selector"
)

// Options says how to reach the cluster and which workload is NocoBase.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty with InCluster for the pod's
	// service account.
	Kubeconfig string
	Context    string
	InCluster  bool
	Namespace  string
	// Deployment or StatefulSet names the workload; or Selector finds the
	// one Deployment (else StatefulSet) whose labels match.
	Deployment  string
	StatefulSet string
	Selector    map[string]string
	// Container is the NocoBase container in the pod (default: the first).
	Container string
	// Port is NocoBase's port on each pod (default 13000).
	Port int
	// StopTimeout bounds a scale-down (default 2m: the pods' grace period
	// and some).
	StopTimeout time.Duration
	// StartTimeout bounds a scale-up until the pods run (default 10m: an
	// image pull included).
	StartTimeout time.Duration
	// CallTimeout bounds each API call (default 30s).
	CallTimeout time.Duration
	// Registry credentials, for the digest lookups of private images.
	RegistryUser, RegistryPassword string
	// PollInterval is the wait between two looks while waiting (default 250ms).
	PollInterval time.Duration
}

// Client is the connection to one namespace.
type Client struct {
	cs   k8s.Interface
	cfg  *rest.Config // for pods/exec streams
	opts Options
	log  zerolog.Logger
}

// Connect builds the API client. It does not contact the API server.
func Connect(opts Options, log zerolog.Logger) (*Client, error) {
	if opts.Namespace == "" {
		return nil, errors.New("kubernetes: no namespace")
	}
	var cfg *rest.Config
	var err error
	switch {
	case opts.InCluster:
		cfg, err = rest.InClusterConfig()
	case opts.Kubeconfig != "":
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: opts.Context}).ClientConfig()
	default:
		return nil, errors.New("kubernetes: set a kubeconfig or in_cluster")
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client configuration: %w", err)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	cfg.Timeout = opts.CallTimeout
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	return newClient(cs, cfg, opts, log)
}

func newClient(cs k8s.Interface, cfg *rest.Config, opts Options, log zerolog.Logger) (*Client, error) {
	n := 0
	for _, set := range []bool{opts.Deployment != "", opts.StatefulSet != "", len(opts.Selector) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("kubernetes: name the workload: a deployment, a statefulset or a selector (one of them)")
	}
	if opts.Port == 0 {
		opts.Port = 13000
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 2 * time.Minute
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	return &Client{cs: cs, cfg: cfg, opts: opts, log: log.With().Str("adapter", "kubernetes").Str("namespace", opts.Namespace).Logger()}, nil
}
