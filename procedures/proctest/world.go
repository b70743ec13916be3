// Package proctest gives tests an in-process NocoBase cluster: one World
// implements the Nodes, App, Backups and Balancer interfaces, records every
// outside action in order, and checks the safety rules as it goes (never
// two nodes migrating the database at once). Failures and blocking points
// can be injected per action.
package proctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
)

type node struct {
	name, image string
	img         image
	running     bool
	broken      bool // started but stuck in APP_ERROR until restarted
	healthy     bool // answered ok since it last started
	reloading   bool // inside a plugin action
	env         map[string]string
	upgrading   bool // runs NocoBase's upgrade: started, not yet healthy
	// Paced worlds only: when the node last started, and the plugin
	// action it reloads for until busyUntil.
	started   time.Time
	busyUntil time.Time
	busyWith  string
}

// serving: the node answers users now.
func (n *node) serving() bool { return n.running && n.healthy && !n.reloading && !n.broken }

// image is one image: its registry digest, local id and the NocoBase
// version it holds; labelled says whether its metadata states it.
type image struct {
	digest, id, version string
	labelled            bool
}

func newImage(ref, version string, labelled bool) image {
	sum := sha256.Sum256([]byte(ref + "/" + version))
	id := sha256.Sum256(sum[:])
	return image{digest: "sha256:" + hex.EncodeToString(sum[:]), id: "sha256:" + hex.EncodeToString(id[:]), version: version, labelled: labelled}
}

type backup struct {
	info      ports.BackupInfo
	dbVersion string
	queue     []string // the Redis queue's jobs, nil without Redis
}

// World is a fake cluster. Its zero value is not usable: call NewWorld.
type World struct {
	actor     // the adapters, for one engine
	mu        sync.Mutex
	log       []Entry
	actions   []string
	nodes     []*node
	lb        ports.LBMode
	local     map[string]image  // the engine's images by reference
	registry  map[string]image  // what a pull of a reference gets
	foreign   map[string]string // references built for another platform: which
	dbVersion string
	migrating string
	backups   []backup
	kinds     backupKinds
	redis     redisState
	fails     map[string][]error
	blocks    map[string]*Block
	// Violations lists broken safety rules, in order.
	violations []string
	// dark: traffic goes to the app nodes and none can serve it (one
	// violation per such stretch).
	dark bool
	// pace makes actions take time (SetPace); nil: at once.
	pace *Pace
}

// NewWorld makes a cluster of nodes named names, all stopped or running,
// on image (repo:tag), with the database at the tag's version.
func NewWorld(ref string, running bool, names ...string) *World {
	return NewWorldOf(ref, versionOf(ref), running, names...)
}

// NewWorldOf is NewWorld for an image whose tag does not say its version
// (a floating tag such as latest).
func NewWorldOf(ref, version string, running bool, names ...string) *World {
	w := &World{lb: ports.LBNormal, fails: map[string][]error{}, blocks: map[string]*Block{},
		local: map[string]image{}, registry: map[string]image{}, foreign: map[string]string{}}
	w.actor = actor{w: w}
	img := newImage(ref, version, true)
	w.local[ref], w.registry[ref] = img, img
	for _, n := range names {
		w.nodes = append(w.nodes, &node{name: n, image: ref, img: img, running: running, healthy: running})
	}
	w.dbVersion = img.version
	return w
}

// Publish makes the registry's ref an image of version (a new digest),
// as a floating tag moves; the engine sees it on the next pull.
// labelled says whether the image's metadata states the version.
func (w *World) Publish(ref, version string, labelled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.registry[ref] = newImage(ref+"#"+fmt.Sprint(len(w.registry)), version, labelled)
}

// BuiltFor makes the image ref one built for platform (say
// "linux/arm64"), which the engine's Resolve refuses.
func (w *World) BuiltFor(ref, platform string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.foreign[ref] = platform
}

// Digest is the digest of the image node runs.
func (w *World) Digest(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.find(name)
	if err != nil {
		return ""
	}
	return n.img.digest
}

// Break leaves a running node stuck in APP_ERROR until it is restarted.
func (w *World) Break(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, err := w.find(name); err == nil {
		n.broken = true
	}
}

// Remove makes a node disappear, as a crash inside an image change can.
func (w *World) Remove(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nodes = slices.DeleteFunc(w.nodes, func(n *node) bool { return n.name == name })
}

// resolve finds an image on the engine by reference, repo@digest or id.
func (w *World) resolve(ref string) (image, bool) {
	if img, ok := w.local[ref]; ok {
		return img, true
	}
	for r, img := range w.local {
		if ref == img.id || ref == repoOf(r)+"@"+img.digest {
			return img, true
		}
	}
	return image{}, false
}

func repoOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

// Cluster returns a procedures.Cluster whose adapters are all this world.
func (w *World) Cluster(name string) *procedures.Cluster {
	return w.As("", name)
}

func versionOf(ref string) string {
	_, tag, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	return strings.TrimSuffix(tag, "-full")
}

// Actions returns every recorded outside action so far.
func (w *World) Actions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.actions)
}

// Violations returns the broken safety rules (none in a correct run).
func (w *World) Violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.violations)
}

// DBVersion is the version the database was last migrated to.
func (w *World) DBVersion() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dbVersion
}

// NodeState returns "running image" or "stopped image" for a node.
func (w *World) NodeState(name string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		if n.name == name {
			if n.running {
				return "running " + n.image
			}
			return "stopped " + n.image
		}
	}
	return "missing"
}

// LB returns the balancer's mode.
func (w *World) LB() ports.LBMode {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lb
}

func (w *World) find(name string) (*node, error) {
	for _, n := range w.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %s", name)
}

// List implements procedures.Nodes.
func (a actor) List(ctx context.Context) ([]ports.Node, error) {
	w := a.w
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ports.Node, len(w.nodes))
	for i, n := range w.nodes {
		state := "exited"
		if n.running {
			state = "running"
		}
		out[i] = ports.Node{Name: n.name, ID: n.name + "-id", Image: n.image, Digest: n.img.digest, State: state, URL: "http://" + n.name + ":13000"}
	}
	return out, nil
}

// Stop implements procedures.Nodes.
func (a actor) Stop(ctx context.Context, name string) error {
	w := a.w
	if err := a.act(ctx, "stop "+name); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.find(name)
	if err != nil {
		return err
	}
	n.running = false
	n.broken = false
	n.healthy = false
	n.upgrading = false
	if w.migrating == name {
		w.migrating = ""
	}
	w.checkTraffic("after stop " + name)
	return nil
}

// Start implements procedures.Nodes.
func (a actor) Start(ctx context.Context, name string) error {
	w := a.w
	if err := a.act(ctx, "start "+name); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.find(name)
	if err != nil {
		return err
	}
	if !n.running && n.img.version != w.dbVersion {
		// Every NocoBase start migrates the database when versions differ.
		if w.migrating != "" && w.migrating != name {
			w.violations = append(w.violations, fmt.Sprintf("%s started on %s while %s was still migrating the database", name, n.image, w.migrating))
		}
		w.migrating = name
	}
	if !n.running && !(n.env["SKIP_SAME_VERSION_UPGRADE"] == "true" && n.img.version == w.dbVersion) {
		// Every start runs NocoBase's upgrade unless told to skip it at
		// the database's version; two at once can break one.
		for _, o := range w.nodes {
			if o != n && o.upgrading {
				w.violations = append(w.violations, fmt.Sprintf("%s began NocoBase's upgrade while %s was still running it", name, o.name))
				break
			}
		}
		n.upgrading = true
	}
	w.redisOnStart(n)
	if !n.running {
		n.healthy = false
		n.started = time.Now()
	}
	n.running = true
	w.checkTraffic("while " + name + " starts")
	return nil
}

// SetImage implements procedures.Nodes.
func (a actor) SetImage(ctx context.Context, name, ref string) error {
	w := a.w
	if err := a.act(ctx, "set-image "+name+" "+ref); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.find(name)
	if err != nil {
		return err
	}
	if n.running {
		w.violations = append(w.violations, "image changed on running node "+name)
	}
	img, ok := w.resolve(ref)
	if !ok {
		return fmt.Errorf("%s: image %s is not on the engine", name, ref)
	}
	n.image, n.img = ref, img
	return nil
}

// Pull implements procedures.Nodes.
func (a actor) Pull(ctx context.Context, ref string, progress ports.Progress) error {
	w := a.w
	if err := a.act(ctx, "pull "+ref); err != nil {
		return err
	}
	w.mu.Lock()
	img, ok := w.registry[ref]
	if !ok {
		if v := versionOf(ref); strings.Contains(v, ".") {
			img = newImage(ref, v, true)
		} else {
			w.mu.Unlock()
			return fmt.Errorf("pull %s: manifest unknown", ref)
		}
	}
	if old, ok := w.local[ref]; ok && old.digest != img.digest {
		// The tag moved; the old image stays on the engine untagged.
		w.local[repoOf(ref)+"@"+old.digest] = old
	}
	w.local[ref] = img
	w.mu.Unlock()
	if d := w.pullTime(); d > 0 {
		const layers = 6
		for i := 1; i <= layers; i++ {
			progress(fmt.Sprintf("pulling %s: layer %d/%d", ref, i, layers))
			if err := sleep(ctx, d/layers); err != nil {
				return err
			}
		}
	}
	progress("pulled " + ref)
	return nil
}

// Resolve implements procedures.Nodes. It is a read, not an action: it
// is not recorded.
func (a actor) Resolve(ctx context.Context, ref string) (ports.ImageInfo, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	img, ok := w.resolve(ref)
	if !ok {
		return ports.ImageInfo{}, fmt.Errorf("no such image: %s", ref)
	}
	if p := w.foreign[ref]; p != "" {
		// As the Docker adapter refuses it.
		return ports.ImageInfo{}, fmt.Errorf("engine: resolve %s: image %s is built for %s, but the engine runs linux/amd64: its nodes would not start (exec format error)", ref, ref, p)
	}
	info := ports.ImageInfo{Ref: ref, ID: img.id, Digest: img.digest, Pinned: img.id}
	if img.labelled {
		info.Version = img.version
	}
	return info, nil
}

// Probe implements procedures.App.
func (a actor) Probe(ctx context.Context, url string) (ports.AppStatus, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		if url != "http://"+n.name+":13000" {
			continue
		}
		switch {
		case w.pace != nil:
			return w.phase(n, time.Now()), nil
		case !n.running:
			return ports.AppStatus{Message: "connection refused"}, nil
		case n.broken:
			return ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_ERROR"}, nil
		}
		return ports.AppStatus{Healthy: true, Listening: true, HTTPStatus: 200}, nil
	}
	return ports.AppStatus{}, fmt.Errorf("no node at %s", url)
}

// Cleanup implements procedures.Nodes; the fake's image changes are never
// half done, so there is nothing to settle and nothing to record.
func (a actor) Cleanup(ctx context.Context) ([]string, error) {
	return nil, ctx.Err()
}

// WaitHealthy implements procedures.App.
func (a actor) WaitHealthy(ctx context.Context, n ports.Node, progress ports.Progress) error {
	w := a.w
	if w.paced() {
		if err := w.waitPhases(ctx, n.Name, progress); err != nil {
			return err
		}
	} else {
		progress(n.Name + ": APP_COMMANDING start — load plugin [ai], 50/77")
	}
	if err := a.act(ctx, "healthy "+n.Name); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	nd, err := w.find(n.Name)
	if err != nil {
		return err
	}
	if !nd.running {
		return fmt.Errorf("%s is not running", n.Name)
	}
	if nd.broken {
		return fmt.Errorf("%s: 503 APP_ERROR", n.Name)
	}
	if w.migrating == n.Name {
		w.dbVersion = nd.img.version
		w.migrating = ""
	}
	nd.healthy = true
	nd.upgrading = false
	w.checkTraffic("")
	return nil
}

// Version implements procedures.App.
func (a actor) Version(ctx context.Context, n ports.Node) (string, error) {
	w := a.w
	if err := a.act(ctx, "version "+n.Name); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	nd, err := w.find(n.Name)
	if err != nil {
		return "", err
	}
	if !nd.running {
		return "", errors.New("connection refused")
	}
	return nd.img.version, nil
}

// Plugin implements procedures.App.
func (a actor) Plugin(ctx context.Context, n ports.Node, action, pkg string, progress ports.Progress) error {
	w := a.w
	if w.paced() {
		progress(fmt.Sprintf("POST /api/pm:%s?filterByTk=%s → 200", action, pkg))
	} else {
		progress(n.Name + ": APP_COMMANDING pm." + action)
	}
	// The node reloads its plugins: it answers 503 until healthy again.
	w.mu.Lock()
	if nd, err := w.find(n.Name); err == nil {
		nd.reloading = true
	}
	w.checkTraffic("while " + n.Name + " reloads for plugin " + action + " " + pkg)
	w.mu.Unlock()
	err := a.act(ctx, "plugin "+action+" "+pkg+" on "+n.Name)
	if err == nil && w.paced() {
		w.mu.Lock()
		if nd, ferr := w.find(n.Name); ferr == nil {
			nd.busyUntil, nd.busyWith = time.Now().Add(w.pace.Plugin), "pm."+action
		}
		w.mu.Unlock()
		err = w.waitPhases(ctx, n.Name, progress)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if nd, ferr := w.find(n.Name); ferr == nil {
		nd.reloading = false
	}
	w.checkTraffic("")
	return err
}

// checkTraffic flags traffic that goes to the app nodes while none can
// serve it: users would get nginx's 502 or a node's own 503. Called with
// the lock held after every change of a node or of the balancer.
func (w *World) checkTraffic(what string) {
	if w.lb != ports.LBNormal {
		w.dark = false
		return
	}
	if slices.ContainsFunc(w.nodes, (*node).serving) {
		w.dark = false
		return
	}
	if !w.dark && what != "" {
		w.violations = append(w.violations, "traffic goes to the app nodes while no node can serve it ("+what+")")
		w.dark = true
	}
}

// SetMode implements procedures.Balancer.
func (a actor) SetMode(ctx context.Context, mode ports.LBMode) error {
	w := a.w
	if err := a.act(ctx, "lb "+string(mode)); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if mode == ports.LBNormal {
		for _, n := range w.nodes {
			if n.running && !n.serving() {
				w.violations = append(w.violations, "traffic back while "+n.name+" is not healthy yet")
			}
		}
	}
	w.lb = mode
	w.checkTraffic("traffic switched back")
	return nil
}

// Mode implements procedures.Balancer.
func (a actor) Mode(ctx context.Context) (ports.LBMode, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lb, nil
}
