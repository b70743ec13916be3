// Package proctest gives tests an in-process NocoBase cluster: one World
// implements the Nodes, App, Backups and Balancer interfaces, records every
// outside action in order, and checks the safety rules as it goes (never
// two nodes migrating the database at once). Failures and blocking points
// can be injected per action.
package proctest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/procedures"
)

type node struct {
	name, image string
	running     bool
}

type backup struct {
	info      procedures.BackupInfo
	dbVersion string
}

// World is a fake cluster. Its zero value is not usable: call NewWorld.
type World struct {
	mu        sync.Mutex
	actions   []string
	nodes     []*node
	lb        procedures.LBMode
	dbVersion string
	migrating string
	backups   []backup
	fails     map[string][]error
	blocks    map[string]*Block
	// Violations lists broken safety rules, in order.
	violations []string
}

// NewWorld makes a cluster of nodes named names, all stopped or running,
// on image (repo:tag), with the database at the tag's version.
func NewWorld(image string, running bool, names ...string) *World {
	w := &World{lb: procedures.LBNormal, fails: map[string][]error{}, blocks: map[string]*Block{}}
	for _, n := range names {
		w.nodes = append(w.nodes, &node{name: n, image: image, running: running})
	}
	w.dbVersion = versionOf(image)
	return w
}

// Cluster returns a procedures.Cluster whose adapters are all this world.
func (w *World) Cluster(name string) *procedures.Cluster {
	return &procedures.Cluster{Name: name, Nodes: w, App: w, Backups: backups{w}, Balancer: w,
		HealthTimeout: time.Minute, CheckpointTimeout: time.Hour}
}

func versionOf(image string) string {
	_, tag, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
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
func (w *World) LB() procedures.LBMode {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lb
}

// Fail makes the next n actions whose first words are prefix fail.
func (w *World) Fail(prefix string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for range n {
		w.fails[prefix] = append(w.fails[prefix], fmt.Errorf("injected failure of %q", prefix))
	}
}

// Block makes the next action starting with prefix wait until released
// (or its context ends).
type Block struct {
	Reached chan struct{} // closed when the action begins
	release chan struct{}
}

// Release lets the blocked action go on.
func (b *Block) Release() { close(b.release) }

// BlockOn installs a block on the next action starting with prefix.
func (w *World) BlockOn(prefix string) *Block {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := &Block{Reached: make(chan struct{}), release: make(chan struct{})}
	w.blocks[prefix] = b
	return b
}

// act records an action and applies injected failures and blocks. The
// lock is not held on return.
func (w *World) act(ctx context.Context, action string) error {
	w.mu.Lock()
	w.actions = append(w.actions, action)
	var blk *Block
	for p, b := range w.blocks {
		if matches(action, p) {
			blk = b
			delete(w.blocks, p)
			break
		}
	}
	var err error
	for p, errs := range w.fails {
		if matches(action, p) && len(errs) > 0 {
			err = errs[0]
			w.fails[p] = errs[1:]
			break
		}
	}
	w.mu.Unlock()
	if blk != nil {
		close(blk.Reached)
		select {
		case <-blk.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// matches: prefix is the whole action or its first words.
func matches(action, prefix string) bool {
	return action == prefix || strings.HasPrefix(action, prefix+" ")
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
func (w *World) List(ctx context.Context) ([]procedures.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]procedures.Node, len(w.nodes))
	for i, n := range w.nodes {
		state := "exited"
		if n.running {
			state = "running"
		}
		out[i] = procedures.Node{Name: n.name, ID: n.name + "-id", Image: n.image, State: state, URL: "http://" + n.name + ":13000"}
	}
	return out, nil
}

// Stop implements procedures.Nodes.
func (w *World) Stop(ctx context.Context, name string) error {
	if err := w.act(ctx, "stop "+name); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.find(name)
	if err != nil {
		return err
	}
	n.running = false
	if w.migrating == name {
		w.migrating = ""
	}
	return nil
}

// Start implements procedures.Nodes.
func (w *World) Start(ctx context.Context, name string) error {
	if err := w.act(ctx, "start "+name); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.find(name)
	if err != nil {
		return err
	}
	if !n.running && versionOf(n.image) != w.dbVersion {
		// Every NocoBase start migrates the database when versions differ.
		if w.migrating != "" && w.migrating != name {
			w.violations = append(w.violations, fmt.Sprintf("%s started on %s while %s was still migrating the database", name, n.image, w.migrating))
		}
		w.migrating = name
	}
	n.running = true
	return nil
}

// SetImage implements procedures.Nodes.
func (w *World) SetImage(ctx context.Context, name, image string) error {
	if err := w.act(ctx, "set-image "+name+" "+image); err != nil {
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
	n.image = image
	return nil
}

// Pull implements procedures.Nodes.
func (w *World) Pull(ctx context.Context, image string, progress procedures.Progress) error {
	if err := w.act(ctx, "pull "+image); err != nil {
		return err
	}
	progress("pulled " + image)
	return nil
}

// WaitHealthy implements procedures.App.
func (w *World) WaitHealthy(ctx context.Context, n procedures.Node, progress procedures.Progress) error {
	progress(n.Name + ": APP_COMMANDING start — load plugin [ai], 50/77")
	if err := w.act(ctx, "healthy "+n.Name); err != nil {
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
	if w.migrating == n.Name {
		w.dbVersion = versionOf(nd.image)
		w.migrating = ""
	}
	return nil
}

// Version implements procedures.App.
func (w *World) Version(ctx context.Context, n procedures.Node) (string, error) {
	if err := w.act(ctx, "version "+n.Name); err != nil {
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
	return versionOf(nd.image), nil
}

// Plugin implements procedures.App.
func (w *World) Plugin(ctx context.Context, n procedures.Node, action, pkg string, progress procedures.Progress) error {
	progress(n.Name + ": APP_COMMANDING pm." + action)
	return w.act(ctx, "plugin "+action+" "+pkg+" on "+n.Name)
}

// Check implements procedures.Backups.
func (w *World) Check(ctx context.Context) error { return w.act(ctx, "backup-check") }

// Create implements procedures.Backups.
func (w *World) Create(ctx context.Context, req procedures.BackupRequest, progress procedures.Progress) (procedures.BackupInfo, error) {
	if err := w.act(ctx, "backup"); err != nil {
		return procedures.BackupInfo{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		if n.running && req.RunID != "" && w.lb == procedures.LBMaintenance {
			w.violations = append(w.violations, "backup taken while "+n.name+" runs during an upgrade")
		}
	}
	info := procedures.BackupInfo{ID: fmt.Sprintf("b%d", len(w.backups)+1), Cluster: req.Cluster, Version: req.Version,
		Image: req.Image, Created: time.Now(), Size: 1 << 20, Verified: true, RunID: req.RunID, Kind: "dump"}
	w.backups = append(w.backups, backup{info: info, dbVersion: w.dbVersion})
	w.actions = append(w.actions, "backup-verified "+info.ID)
	progress("dump 1.0 MiB")
	return info, nil
}

// Verify implements procedures.Backups.
func (w *World) Verify(ctx context.Context, id string) (procedures.BackupInfo, error) {
	if err := w.act(ctx, "verify "+id); err != nil {
		return procedures.BackupInfo{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.backups {
		if b.info.ID == id {
			return b.info, nil
		}
	}
	return procedures.BackupInfo{}, fmt.Errorf("no backup %s", id)
}

// Restore implements procedures.Backups.
func (w *World) Restore(ctx context.Context, id string, progress procedures.Progress) error {
	if err := w.act(ctx, "restore "+id); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		if n.running {
			w.violations = append(w.violations, "restore while "+n.name+" runs")
		}
	}
	for _, b := range w.backups {
		if b.info.ID == id {
			w.dbVersion = b.dbVersion
			return nil
		}
	}
	return fmt.Errorf("no backup %s", id)
}

// AddBackup records a backup taken earlier (for restore actions).
func (w *World) AddBackup(id, version string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.backups = append(w.backups, backup{info: procedures.BackupInfo{ID: id, Version: version, Verified: true}, dbVersion: version})
}

// backups is the World seen as procedures.Backups: its List lists
// backups, where the World's own List lists nodes.
type backups struct{ *World }

// List implements procedures.Backups.
func (b backups) List(ctx context.Context) ([]procedures.BackupInfo, error) {
	w := b.World
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]procedures.BackupInfo, 0, len(w.backups))
	for i := len(w.backups) - 1; i >= 0; i-- {
		out = append(out, w.backups[i].info)
	}
	return out, nil
}

// SetMode implements procedures.Balancer.
func (w *World) SetMode(ctx context.Context, mode procedures.LBMode) error {
	if err := w.act(ctx, "lb "+string(mode)); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if mode == procedures.LBNormal {
		for _, n := range w.nodes {
			if !n.running {
				w.violations = append(w.violations, "traffic back while "+n.name+" is stopped")
			}
		}
	}
	w.lb = mode
	return nil
}

// Mode implements procedures.Balancer.
func (w *World) Mode(ctx context.Context) (procedures.LBMode, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lb, nil
}
