package backup

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// Every procedure on a MariaDB cluster, through the real engine: nodes,
// app and load balancer are proctest's in-process fakes, the backups are
// this package's Manager on the real MariaDB server and a real storage
// folder. The engine has no dialect anywhere: this shows that the MySQL
// side of the seam is all a MariaDB cluster needs.

const (
	procOldImage = "nocobase/nocobase:2.2.14"
	procNewImage = "nocobase/nocobase:2.2.15"
)

// migratingApp is proctest's app, except that the first node to become
// healthy on the new image runs "the migrations" (migrate) on the real
// database, as NocoBase does at start.
type migratingApp struct {
	*proctest.World
	migrate  func()
	mu       sync.Mutex
	migrated bool
}

func (a *migratingApp) WaitHealthy(ctx context.Context, n ports.Node, progress ports.Progress) error {
	if err := a.World.WaitHealthy(ctx, n, progress); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.migrated && a.World.NodeState(n.Name) == "running "+procNewImage {
		a.migrated = true
		a.migrate()
	}
	return nil
}

type procRig struct {
	t     *testing.T
	world *proctest.World
	f     mysqlFixture
	m     *Manager
	eng   *procedures.Engine
	sub   *events.Subscription
}

func newProcRig(t *testing.T, image string, running bool) *procRig {
	f := newMySQLFixture(t, mysqlShape{Small: 30, SmallRows: 3, Big: 1, BigRows: 300, TextBytes: 128})
	m, err := New(f.localOptions(t, "", ""), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	w := proctest.NewWorld(image, running, "app-1", "app-2", "app-3")
	c := w.Cluster("prod")
	c.App = &migratingApp{World: w, migrate: func() { mysqlMigrateAndChange(t, f.db) }}
	c.Backups = m
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nocobot.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{c}, Log: zerolog.Nop(),
		PollEvery: 20 * time.Millisecond, LeaseTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &procRig{t: t, world: w, f: f, m: m, eng: eng, sub: eng.Subscribe()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; r.sub.Close(); st.Close() })
	time.Sleep(5 * time.Millisecond)
	return r
}

func (r *procRig) start(req procedures.Request) {
	r.t.Helper()
	req.Cluster, req.Requester = "prod", "U1"
	if _, err := r.eng.Start(context.Background(), req); err != nil {
		r.t.Fatal(err)
	}
}

// wait reads events until a checkpoint of kind opens ("" for the end of
// the run) and returns the run.
func (r *procRig) wait(kind string) store.Run {
	r.t.Helper()
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case ev := <-r.sub.C:
			if kind == "" && ev.Kind == events.RunFinished {
				return ev.Run
			}
			if kind != "" && ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == kind {
				return ev.Run
			}
			if ev.Kind == events.RunFinished {
				r.t.Fatalf("the run ended (%s) before checkpoint %s; actions %q", ev.Run.State, kind, r.world.Actions())
			}
		case <-timeout:
			r.t.Fatalf("no %q within 3 minutes; actions %q", kind, r.world.Actions())
		}
	}
}

func (r *procRig) decide(run store.Run, a store.Action) {
	r.t.Helper()
	if _, err := r.eng.Decide(context.Background(), store.Decision{RunID: run.ID, Checkpoint: run.Checkpoint.ID, Action: a, By: "U2", Via: "test"}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *procRig) backups() []ports.BackupInfo {
	r.t.Helper()
	list, err := r.m.List(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return list
}

func TestMariaDBUpgradeContinue(t *testing.T) {
	r := newProcRig(t, procOldImage, true)
	before := mysqlSnapshot(t, r.f.db)
	r.start(procedures.Request{Procedure: procedures.ProcUpgrade, Version: "2.2.15"})
	r.decide(r.wait("verify"), store.ActionContinue)
	if end := r.wait(""); end.State != store.StateSucceeded {
		t.Fatalf("state %s; actions %q", end.State, r.world.Actions())
	}
	list := r.backups()
	if len(list) != 1 || !list[0].Verified || list[0].Version != "2.2.14" {
		t.Fatalf("backups = %+v", list)
	}
	if man := readManifest(t, r.f.dest, list[0].ID); man.Database.Dialect != "mariadb" {
		t.Errorf("dialect %q", man.Database.Dialect)
	}
	if len(before.diff(mysqlSnapshot(t, r.f.db))) == 0 {
		t.Error("the upgrade's migrations are not in the database")
	}
	if v := r.world.Violations(); len(v) > 0 {
		t.Errorf("safety rules broken: %q", v)
	}
}

func TestMariaDBUpgradeRollback(t *testing.T) {
	r := newProcRig(t, procOldImage, true)
	before := mysqlSnapshot(t, r.f.db)
	filesBefore := fileSnapshot(t, r.f.storage, DefaultExcludes)
	r.start(procedures.Request{Procedure: procedures.ProcUpgrade, Version: "2.2.15"})
	cp := r.wait("verify")
	if len(before.diff(mysqlSnapshot(t, r.f.db))) == 0 {
		t.Fatal("the first node did not migrate the database")
	}
	changeStorage(t, r.f.storage)
	r.decide(cp, store.ActionRollback)
	if end := r.wait(""); end.State != store.StateRolledBack {
		t.Fatalf("state %s; actions %q", end.State, r.world.Actions())
	}
	assertSame(t, "database after roll back", before, mysqlSnapshot(t, r.f.db))
	assertSame(t, "storage after roll back", filesBefore, fileSnapshot(t, r.f.storage, DefaultExcludes))
	if r.world.NodeState("app-3") != "running "+procOldImage {
		t.Errorf("app-3: %s", r.world.NodeState("app-3"))
	}
}

// TestMariaDBMaintainBackupAndRestore: maintain with a backup, then
// maintain restoring that backup after the data changed.
func TestMariaDBMaintainBackupAndRestore(t *testing.T) {
	r := newProcRig(t, procOldImage, true)
	before := mysqlSnapshot(t, r.f.db)
	r.start(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "backup"}}})
	r.decide(r.wait("verify"), store.ActionContinue)
	if end := r.wait(""); end.State != store.StateSucceeded {
		t.Fatalf("maintain backup: state %s; actions %q", end.State, r.world.Actions())
	}
	list := r.backups()
	if len(list) != 1 {
		t.Fatalf("backups = %+v", list)
	}
	first := list[0].ID

	mysqlMigrateAndChange(t, r.f.db)
	time.Sleep(1100 * time.Millisecond) // backup ids have one-second resolution
	r.start(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "restore", Arg: first}}})
	r.decide(r.wait("verify"), store.ActionContinue)
	if end := r.wait(""); end.State != store.StateSucceeded {
		t.Fatalf("maintain restore: state %s; actions %q", end.State, r.world.Actions())
	}
	assertSame(t, "database after maintain restore", before, mysqlSnapshot(t, r.f.db))
	if got := len(r.backups()); got != 2 {
		t.Errorf("%d backups, want 2 (the restore's safety backup)", got)
	}
	if !strings.Contains(strings.Join(r.world.Actions(), " "), "stop app-2") {
		t.Errorf("actions %q", r.world.Actions())
	}
}

func TestMariaDBFirstStart(t *testing.T) {
	r := newProcRig(t, procNewImage, false)
	before := mysqlSnapshot(t, r.f.db)
	r.start(procedures.Request{Procedure: procedures.ProcStart})
	if end := r.wait(""); end.State != store.StateSucceeded {
		t.Fatalf("state %s; actions %q", end.State, r.world.Actions())
	}
	for _, n := range []string{"app-1", "app-2", "app-3"} {
		if s := r.world.NodeState(n); s != "running "+procNewImage {
			t.Errorf("%s: %s", n, s)
		}
	}
	// The first node "installed" (migrated) the database, once.
	if len(before.diff(mysqlSnapshot(t, r.f.db))) == 0 {
		t.Error("the first node did not reach the database")
	}
	testenv.MySQLExec(t, r.f.db, "SELECT 1")
}
