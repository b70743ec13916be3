// Package ports holds what the engine (procedures) needs from the outside
// world: the nodes, the app on them, backups, the load balancer, Redis and
// the clock. Each interface is small and implemented by one package under
// adapters/, which imports this package and never the engine; the engine's
// unit tests use in-process fakes (procedures/proctest).
package ports

import (
	"context"
	"time"
)

// Progress receives a one-line, human-readable progress report, such as
// "app-1: APP_COMMANDING upgrade — load plugin [ai], 50/77". It may be
// called often; callers must not block on it.
type Progress func(msg string)

// Node is one NocoBase application node (a container, or a Swarm slot).
type Node struct {
	Name   string // stable identity across re-imaging, e.g. "prod-app-1"
	ID     string // container id; changes when the image changes
	Image  string // image reference, e.g. "nocobase/nocobase:1.7.14"
	Digest string // image digest if known, e.g. "sha256:…"
	State  string // "running", "exited", "created", …
	Health string // Docker health status if the container has a check
	URL    string // base URL of the NocoBase app, e.g. "http://127.0.0.1:13001"
}

// Running reports whether the node's container is running.
func (n Node) Running() bool { return n.State == "running" }

// Nodes finds and drives the app nodes of one cluster.
//
// Every method is idempotent: stopping a stopped node or starting a
// running one succeeds. Nodes are addressed by Name; List returns them in
// a stable order (by name). Errors name the node and the action. Calls
// for different nodes may come at once (nodes started or changed
// together, StartParallelism at a time).
type Nodes interface {
	List(ctx context.Context) ([]Node, error)
	// Stop stops a node gracefully, killing it after the configured
	// timeout, and returns when it is no longer running.
	Stop(ctx context.Context, name string) error
	// Start starts a node and returns when its container is running (not
	// when the app is healthy: that is the App's job).
	Start(ctx context.Context, name string) error
	// SetImage recreates a stopped node with the same configuration and a
	// new image. The node stays stopped.
	SetImage(ctx context.Context, name, image string) error
	// Pull makes an image present on the engine, reporting progress; a tag
	// that does not exist fails with the registry's message.
	Pull(ctx context.Context, image string, progress Progress) error
	// Resolve says which image exactly a reference names on the engine
	// now (Pull it first), with the version its metadata declares.
	Resolve(ctx context.Context, image string) (ImageInfo, error)
	// Cleanup settles image changes that a crash interrupted (a node
	// whose old container was set aside and never removed) and returns
	// the nodes it touched; afterwards every node is one container again.
	Cleanup(ctx context.Context) ([]string, error)
}

// NodeEnv reads and changes one node's own environment: the variables
// set on its container, the image's defaults left out. Plain Docker
// containers each have one; the nodes of a Swarm service share the
// service's, so such a cluster has no NodeEnv.
type NodeEnv interface {
	// EnvHashes returns each variable set on the node with a hash of its
	// value: values never leave the adapter.
	EnvHashes(ctx context.Context, name string) (map[string]string, error)
	// SetEnv re-creates a stopped node with key=value in its environment,
	// or without key when value is "", keeping everything else; a node
	// that already is so is left alone. The node stays stopped.
	SetEnv(ctx context.Context, name, key, value string) error
}

// ImageInfo is what the engine knows of an image reference.
type ImageInfo struct {
	Ref    string // as given: a tag, "registry/team/name:tag", "repo@sha256:…" or an image id
	ID     string // the engine's image id, "sha256:…"
	Digest string // the registry's digest in Ref's repository; "" if it never came from one
	// Pinned names exactly this image whatever tags move later
	// ("repo@sha256:…", else the id): SetImage accepts it, so preflight
	// can record it for a rollback.
	Pinned string
	// Version is the NocoBase version the image's metadata declares, ""
	// when it declares none (NocoBase's own images do not): then it is
	// known only once a node runs it.
	Version  string
	Floating bool // the tag may move (latest, beta, alpha, latest-full…)
}

// AppStatus is what one health probe of a node saw.
type AppStatus struct {
	Healthy bool
	// Listening is false while the connection is refused (not started yet).
	Listening  bool
	HTTPStatus int
	Code       string // NocoBase error code, e.g. "APP_COMMANDING"
	Command    string // command name while commanding, e.g. "upgrade"
	Message    string // e.g. "load plugin [ai], 50/77"
}

// App talks to the NocoBase application on a node.
type App interface {
	// WaitHealthy polls the node's health check until it answers ok,
	// reporting each status change through progress, until ctx's deadline.
	WaitHealthy(ctx context.Context, node Node, progress Progress) error
	// Version returns the version the node reports (data.version).
	Version(ctx context.Context, node Node) (string, error)
	// Probe asks a node's health check once.
	Probe(ctx context.Context, baseURL string) (AppStatus, error)
	// CheckKey asks a running node whether it accepts the API key that
	// plugin actions send; a refusal names where the key comes from.
	CheckKey(ctx context.Context, node Node) error
	// Plugin runs a plugin action ("enable", "disable", "add") on one node
	// and waits until the node is healthy again.
	Plugin(ctx context.Context, node Node, action, pkg string, progress Progress) error
}

// BackupInfo describes one complete backup (database and storage).
type BackupInfo struct {
	ID       string
	Cluster  string
	Version  string // NocoBase version the data belongs to
	Image    string
	Created  time.Time
	Size     int64 // bytes, all parts
	Verified bool
	RunID    string // the run that took it, if any
	Kind     string // "copy" (in-server database copy) or "dump"; "" if unknown
	// Holds says what the backup still holds when that is not all of it
	// (its in-server copy was swapped in by a restore): "" when whole.
	Holds string
	// Extras say what the backup holds besides database and storage,
	// e.g. "Redis queue redis://…/3 (QUEUE_ADAPTER_REDIS_URL): 12 keys saved".
	Extras []string
}

// BackupRequest says what a new backup belongs to.
type BackupRequest struct {
	Cluster string
	Version string
	Image   string
	RunID   string
}

// Backups takes, verifies and restores complete backups of a cluster.
type Backups interface {
	// Check fails if a backup could not be taken now: destination not
	// writable or without room, database unreachable.
	Check(ctx context.Context) error
	// Create takes a backup of the database and storage and verifies it;
	// an error means no usable backup exists.
	Create(ctx context.Context, req BackupRequest, progress Progress) (BackupInfo, error)
	// Verify checks a backup's checksums and readability.
	Verify(ctx context.Context, id string) (BackupInfo, error)
	// Restore verifies a backup, then puts the database and storage back
	// exactly as they were when it was taken.
	Restore(ctx context.Context, id string, progress Progress) error
	// List returns the cluster's backups, newest first.
	List(ctx context.Context) ([]BackupInfo, error)
	// PlanKind says which kind of backup Create would take (BackupCopy
	// or BackupDump) and why, for the plan and preflight: now, or once
	// every node is stopped when nodesStopped is set.
	PlanKind(ctx context.Context, nodesStopped bool) (kind, reason string)
	// Export makes a BackupCopy backup portable once traffic is back (a
	// verified dump taken from the in-server copy); a dump is returned
	// as it is.
	Export(ctx context.Context, id string, progress Progress) (BackupInfo, error)
}

// Backup kinds (BackupInfo.Kind).
const (
	// BackupCopy is an in-server copy of the database: seconds inside
	// the downtime, a rollback by renames, exported to a dump afterwards.
	BackupCopy = "copy"
	// BackupDump is a dump that leaves the server.
	BackupDump = "dump"
)

// LBMode is where the load balancer sends traffic.
type LBMode string

const (
	LBNormal      LBMode = "normal"      // traffic to the app nodes
	LBMaintenance LBMode = "maintenance" // 503 page
	LBUnknown     LBMode = "unknown"
)

// Balancer switches the cluster's load balancer between the app and the
// 503 maintenance page.
type Balancer interface {
	// SetMode switches and, where configured, probes the public URL to
	// confirm the switch took effect.
	SetMode(ctx context.Context, mode LBMode) error
	Mode(ctx context.Context) (LBMode, error)
}

// Clock is the engine's and scheduler's view of time, injected so tests
// never sleep through real minutes.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SystemClock returns the wall clock.
func SystemClock() Clock { return realClock{} }

// Redis is the part of a cluster's state that NocoBase keeps in Redis
// (adapters/redis): a cache derived from the database, locks held by
// nodes, pub/sub signals. The queue's pending jobs are not here: they are
// part of each backup (saved by Backups.Create, put back by Restore).
type Redis interface {
	// Describe says which Redis databases the cluster uses and what is
	// done with each, passwords redacted; "none" without any.
	Describe(ctx context.Context) string
	// Check fails if a reset or a backup could not reach the databases, or
	// would be refused, now; it says what it found.
	Check(ctx context.Context) (string, error)
	// Reset empties the app's cache and drops its locks and pub/sub
	// signals (only the app's keys), for while every node is stopped.
	// It may be repeated; it says what it deleted.
	Reset(ctx context.Context, progress func(string)) (string, error)
}
