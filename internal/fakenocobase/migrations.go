package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// With NOCOBASE_DB set, a start does what NocoBase's quickstart does
// (packages/core/server/src/commands/start.ts, application.ts): an app
// that is not installed is installed; an installed one runs its upgrade —
// unless SKIP_SAME_VERSION_UPGRADE=true, the version knows the switch
// (2.0 and later here) and the database is at the node's version. The
// folder stands for the database, shared by the nodes:
//
//	version           the application version (absent: not installed)
//	migrations/<name> one file a recorded migration, made with O_EXCL:
//	                  the migrations table's unique key
//	running/<node>    while a node installs or upgrades
//
// and, in NOCOBASE_DB_LOG (default: the same folder; elsewhere, a restore
// of the folder keeps them):
//
//	ran.log           "<migration> <node>", each time a node runs one
//	upgrades.log      "<node> install|upgrade|skip <version>"
//	overlaps.log      "<node> <other>": an upgrade or install began while
//	                  another node's was running
//
// As in NocoBase, an install records no migration, so the next upgrade
// runs them all; an upgrade reads what is pending, runs it (taking
// NOCOBASE_MIGRATE_TIME), then records it, and a node that finds a
// migration recorded meanwhile by another fails on the unique key and
// stays in APP_ERROR until restarted.
type database struct {
	dir, logDir, node string
	version           string
	migrateTime       time.Duration
	skipSame          bool
}

// migrationsOf are the migrations a version's code holds.
func migrationsOf(version string) []string {
	return []string{
		"20240613222612-fix-assign-field-config/@nocobase/plugin-workflow",
		"20250312100000-fix-sort-field/@nocobase/server",
		"upgrade-to-" + version + "/@nocobase/server",
	}
}

// hasSkipSwitch: the version reads SKIP_SAME_VERSION_UPGRADE (NocoBase
// 2.0.0-alpha.21 and later; here any 2.x or later).
func hasSkipSwitch(version string) bool {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 2
}

func (d *database) path(parts ...string) string {
	return filepath.Join(append([]string{d.dir}, parts...)...)
}

func (d *database) log(file, line string) error {
	if err := os.MkdirAll(d.logDir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(d.logDir, file), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, line)
	return errors.Join(err, f.Close())
}

// nodeFile is the node's name as a file name (it is an address).
func nodeFile(node string) string { return strings.NewReplacer("/", "_", ":", "_").Replace(node) }

func migrationFile(name string) string { return strings.ReplaceAll(name, "/", "__") }

// start installs or upgrades, as a quickstart does.
func (d *database) start() error {
	if err := os.MkdirAll(d.path("migrations"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(d.path("running"), 0o755); err != nil {
		return err
	}
	have, err := os.ReadFile(d.path("version"))
	installed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dbVersion := strings.TrimSpace(string(have))
	if installed && d.skipSame && hasSkipSwitch(d.version) && dbVersion == d.version {
		fmt.Printf("fakenocobase: app is already the latest version (%s)\n", dbVersion)
		return d.log("upgrades.log", d.node+" skip "+d.version)
	}
	done, err := d.running()
	if err != nil {
		return err
	}
	defer done()
	if !installed {
		time.Sleep(d.migrateTime)
		if err := d.log("upgrades.log", d.node+" install "+d.version); err != nil {
			return err
		}
		return os.WriteFile(d.path("version"), []byte(d.version+"\n"), 0o644)
	}
	if err := d.log("upgrades.log", d.node+" upgrade "+d.version); err != nil {
		return err
	}
	var pending []string
	for _, m := range migrationsOf(d.version) {
		if _, err := os.Stat(d.path("migrations", migrationFile(m))); errors.Is(err, fs.ErrNotExist) {
			pending = append(pending, m)
		}
	}
	time.Sleep(d.migrateTime)
	for _, m := range pending {
		if err := d.log("ran.log", m+" "+d.node); err != nil {
			return err
		}
		f, err := os.OpenFile(d.path("migrations", migrationFile(m)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("SequelizeUniqueConstraintError: Validation error (migrations.name %s)", m)
		}
		if err != nil {
			return err
		}
		_ = f.Close()
	}
	return os.WriteFile(d.path("version"), []byte(d.version+"\n"), 0o644)
}

// running marks this node's install or upgrade as running, noting any
// other that runs at the same time.
func (d *database) running() (func(), error) {
	mine := d.path("running", nodeFile(d.node))
	if err := os.WriteFile(mine, nil, 0o644); err != nil {
		return nil, err
	}
	others, err := os.ReadDir(d.path("running"))
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		if o.Name() != nodeFile(d.node) {
			if err := d.log("overlaps.log", nodeFile(d.node)+" "+o.Name()); err != nil {
				return nil, err
			}
		}
	}
	return func() { _ = os.Remove(mine) }, nil
}

// startState is what a start is doing: busy installing or upgrading, or
// failed (APP_ERROR until the node restarts).
type startState struct {
	mu     sync.Mutex
	busy   bool
	failed error
}

func (s *startState) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy = true
}

func (s *startState) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy, s.failed = false, err
	if err != nil {
		fmt.Println("fakenocobase: start failed:", err)
	}
}

func (s *startState) now() (busy bool, failed error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy, s.failed
}
