package docker

import (
	"encoding/json"
	"fmt"
	"time"
)

// Labels nocobot reads or writes on containers and services.
const (
	// LabelURL on a node overrides the URL derived from its address,
	// e.g. "http://app-1.internal:13000". On a Swarm service, "{slot}" in
	// it is replaced by the task's slot number.
	LabelURL = "nocobot.url"
	// LabelPreviousImage and LabelPreviousDigest are set by SetImage on
	// the re-created node (or the service): what to go back to.
	LabelPreviousImage  = "nocobot.previous-image"
	LabelPreviousDigest = "nocobot.previous-digest"
	// LabelReplicas on a Swarm service remembers the cluster's size while
	// it is scaled down.
	LabelReplicas = "nocobot.replicas"
	// LabelRestartPolicy records a node's own restart policy while nocobot
	// holds it at "no" (see restartpolicy.go).
	LabelRestartPolicy = "nocobot.restart-policy"
	// DefaultVersionLabel is the image label Resolve reads the version
	// from unless Options.VersionLabel says otherwise.
	DefaultVersionLabel = "org.opencontainers.image.version"
)

// Pull policies (Options.PullPolicy).
const (
	PullAlways  = "always"  // ask the registry every time
	PullMissing = "missing" // use an image present on the engine as it is
	PullNever   = "never"   // never contact a registry; the image must be on the engine
	// PullAuto (the default, "") is "missing" for tags that name one
	// build (they contain a digit: 1.7.14, 1.7.14-full, 2026-11-30) and
	// for digests, and "always" for floating tags (latest, beta, alpha,
	// latest-full…), which move.
	PullAuto = ""
)

// Options configures a cluster's nodes.
type Options struct {
	EngineOptions

	// Labels select the node containers (all must match), e.g.
	// {"com.docker.compose.project": "prod", "com.docker.compose.service": "app"}.
	Labels map[string]string
	// SwarmService, instead of Labels, names the Swarm service whose
	// replicas are the nodes.
	SwarmService string

	// Network picks the container address for a node's URL when it has
	// no nocobot.url label. Empty: the container's only network.
	Network string
	// Port is the NocoBase port on that address; default 13000.
	Port int

	// StopTimeout is how long a node gets to stop after SIGTERM before it
	// is killed; default 30s.
	StopTimeout time.Duration
	// StartTimeout bounds the wait until a started node's container is
	// running (Swarm: until its task runs); default 2m.
	StartTimeout time.Duration
	// StartParallelism is how many nodes StartRest starts at once;
	// default 1 (one at a time).
	StartParallelism int

	// PullPolicy is PullAuto (default), PullAlways, PullMissing or PullNever.
	PullPolicy string
	// Registry holds credentials for Pull.
	Registry RegistryAuth

	// VersionLabel is the image label that holds the NocoBase version;
	// default DefaultVersionLabel. VersionEnv, if set, is an environment
	// variable of the image consulted when the label is absent. NocoBase's
	// own images set neither today, so Resolve then reports no version.
	VersionLabel string
	VersionEnv   string
}

// RegistryAuth holds registry credentials. With no Username, Pull reads
// the Docker config file (ConfigFile, else $DOCKER_CONFIG/config.json,
// else ~/.docker/config.json). The password never appears in String,
// JSON or logs.
type RegistryAuth struct {
	Username string
	Password string
	// ConfigFile overrides where the Docker config file is.
	ConfigFile string
}

// String hides the password.
func (r RegistryAuth) String() string {
	if r.Username == "" {
		return "RegistryAuth{config file}"
	}
	return "RegistryAuth{" + r.Username + ":[redacted]}"
}

// GoString hides the password from %#v too.
func (r RegistryAuth) GoString() string { return r.String() }

// MarshalJSON hides the password (zerolog and encoding/json use it).
func (r RegistryAuth) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"username": r.Username, "password": redacted(r.Password), "config_file": r.ConfigFile})
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// withDefaults fills in the defaults and checks the settings both kinds
// of node set share.
func (o Options) withDefaults() (Options, error) {
	if o.Port == 0 {
		o.Port = 13000
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.StartParallelism <= 0 {
		o.StartParallelism = 1
	}
	if o.VersionLabel == "" {
		o.VersionLabel = DefaultVersionLabel
	}
	switch o.PullPolicy {
	case PullAuto, PullAlways, PullMissing, PullNever:
	default:
		return o, fmt.Errorf("docker: pull policy %q: want always, missing or never (or empty for the default)", o.PullPolicy)
	}
	return o, nil
}
