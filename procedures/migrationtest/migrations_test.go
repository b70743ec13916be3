// Package migrationtest runs whole procedures on stand-in NocoBase nodes
// of the real Docker engine whose starts run "migrations" on one shared
// database (internal/fakenocobase, migrations.go), and checks what a user
// would: every migration applied once, no two nodes upgrading at once,
// every node healthy.
package migrationtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/backup"
	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/adapters/lb"
	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// cluster is three stand-in nodes sharing one storage folder (the
// database stands in it), driven by an engine with the real adapters.
type cluster struct {
	t       *testing.T
	host    string
	label   string
	storage string
	logs    string // the fake database's logs, outside what a restore rewinds
	names   []string
	urls    []string
	eng     *procedures.Engine
}

// newCluster creates n nodes of image (not started) with env on top of
// what every node gets; perNode(i) adds node i's own variables.
func newCluster(t *testing.T, n int, image string, perNode func(i int) []string, migrations string) *cluster {
	t.Helper()
	host := testenv.DockerHost(t)
	dir := testenv.TempDir(t)
	c := &cluster{t: t, host: host, label: fmt.Sprintf("mig-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6),
		storage: filepath.Join(dir, "storage"), logs: filepath.Join(dir, "logs")}
	for _, d := range []string{c.storage, c.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		env := []string{"NOCOBASE_BOOT_TIME=200ms", "NOCOBASE_MIGRATE_TIME=1s",
			"NOCOBASE_DB=/app/nocobase/storage/db", "NOCOBASE_DB_LOG=/logs",
			"APP_KEY=the-same-secret", fmt.Sprintf("APP_PORT=%d", 13000+i), fmt.Sprintf("NODE_LABEL=n%d", i)}
		if perNode != nil {
			env = append(env, perNode(i)...)
		}
		node := testenv.RunNode(t, host, testenv.NodeSpec{Name: fmt.Sprintf("%s-app-%d", c.label, i+1), Image: image,
			Labels: map[string]string{"nocobot.mig": c.label}, Env: env, Created: true,
			Mounts: []string{c.storage + ":/app/nocobase/storage", c.logs + ":/logs"}})
		c.names = append(c.names, node.Name)
		c.urls = append(c.urls, node.URL)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	nodes, err := docker.New(docker.Options{EngineOptions: docker.EngineOptions{Host: host}, Labels: map[string]string{"nocobot.mig": c.label},
		StopTimeout: 10 * time.Second, PullPolicy: docker.PullNever}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nodes.Close() })
	bk, err := backup.New(backup.Options{Cluster: "mig", Dest: filepath.Join(dir, "backups"), DBURL: testenv.NewDatabase(t),
		PgBin: testenv.PostgresBin(t), StorageHostPath: c.storage, NoCopy: true, Jobs: 1}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	bal, err := lb.NewNone(lb.ProbeOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	pc := &procedures.Cluster{Name: "mig", Nodes: nodes, App: nocobase.New(nocobase.Options{PollInterval: 100 * time.Millisecond}, log),
		Backups: bk, Balancer: bal, NodeEnv: nodes.NodeEnv(), Migrations: migrations, PerNodeEnv: []string{"NODE_LABEL"},
		HealthTimeout: time.Minute}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "nocobot.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{pc}, Log: log, PollEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(10 * time.Millisecond)
	c.eng = eng
	return c
}

// run starts req and answers the verify checkpoint with verify; any
// other checkpoint (a failure) fails the test with its question.
func (c *cluster) run(req procedures.Request, verify store.Action) store.Run {
	c.t.Helper()
	req.Cluster, req.Requester = "mig", "tester"
	sub := c.eng.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run, err := c.eng.Start(ctx, req)
	if err != nil {
		c.t.Fatal(err)
	}
	for {
		select {
		case ev := <-sub.C:
			if ev.Run.ID != run.ID {
				continue
			}
			switch {
			case ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == "verify":
				if _, err := c.eng.Decide(ctx, store.Decision{RunID: run.ID, Checkpoint: ev.Run.Checkpoint.ID, Action: verify, By: "tester", Via: "test"}); err != nil {
					c.t.Fatal(err)
				}
			case ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil:
				c.t.Fatalf("%s stopped at %s: %s\nlogs:\n%s", req.Procedure, ev.Run.Checkpoint.Kind, ev.Run.Checkpoint.Question, c.dbLogs())
			case ev.Kind == events.RunFinished:
				return ev.Run
			}
		case <-ctx.Done():
			c.t.Fatalf("%s did not finish\nlogs:\n%s", req.Procedure, c.dbLogs())
		}
	}
}

func (c *cluster) read(name string) string {
	b, err := os.ReadFile(filepath.Join(c.logs, name))
	if err != nil && !os.IsNotExist(err) {
		c.t.Fatal(err)
	}
	return string(b)
}

func (c *cluster) dbLogs() string {
	return "upgrades.log:\n" + c.read("upgrades.log") + "ran.log:\n" + c.read("ran.log") + "overlaps.log:\n" + c.read("overlaps.log")
}

// checkMigrations: no two nodes ever installed or upgraded at once, each
// migration ran once, and every node answers ok on version.
func (c *cluster) checkMigrations(version string, wantRan []string) {
	c.t.Helper()
	if o := c.read("overlaps.log"); o != "" {
		c.t.Errorf("two nodes ran NocoBase's upgrade at once:\n%s", c.dbLogs())
	}
	ran := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(c.read("ran.log")), "\n") {
		if m, _, ok := strings.Cut(line, " "); ok {
			ran[m]++
		}
	}
	for m, n := range ran {
		if n != 1 {
			c.t.Errorf("migration %s ran %d times:\n%s", m, n, c.dbLogs())
		}
	}
	for _, m := range wantRan {
		if ran[m] == 0 {
			c.t.Errorf("migration %s never ran:\n%s", m, c.dbLogs())
		}
	}
	for i, u := range c.urls {
		code, body := get(u + "/api/app:getInfo")
		if code != 200 || !strings.Contains(body, `"version":"`+version+`"`) {
			c.t.Errorf("%s: %d %s", c.names[i], code, body)
		}
	}
}

func step(r store.Run, name string) store.Step {
	for _, s := range r.Steps {
		if s.Name == name && !s.Rollback {
			return s
		}
	}
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	return store.Step{}
}

var fixMigrations = []string{
	"20240613222612-fix-assign-field-config/@nocobase/plugin-workflow",
	"20250312100000-fix-sort-field/@nocobase/server",
}

// seed makes the database as a cluster on version left it: installed,
// every migration of that version recorded.
func (c *cluster) seed(version string) {
	c.t.Helper()
	dir := filepath.Join(c.storage, "db", "migrations")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	for _, m := range append(slices.Clone(fixMigrations), "upgrade-to-"+version+"/@nocobase/server") {
		if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(m, "/", "__")), nil, 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.storage, "db", "version"), []byte(version+"\n"), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// In a first start, an upgrade continued, one rolled back and a
// maintenance, once the first node has started no two nodes run the
// upgrade at once, every migration runs once and no node is left in
// APP_ERROR. The nodes' APP_PORT (per node for NocoBase) and NODE_LABEL
// (configured per node) differ, and preflight lets them.
func TestMigrationsOneNodeAtATime(t *testing.T) {
	host := testenv.DockerHost(t)
	v1 := testenv.NodeImage(t, host, "2.1.0")
	testenv.NodeImage(t, host, "2.2.0")

	t.Run("first-start", func(t *testing.T) {
		c := newCluster(t, 3, v1, nil, "")
		end := c.run(procedures.Request{Procedure: procedures.ProcStart}, "")
		if end.State != store.StateSucceeded {
			t.Fatalf("first start %s: %s", end.State, end.Error)
		}
		rest := step(end, "start-rest").Detail
		if !strings.Contains(rest, "SKIP_SAME_VERSION_UPGRADE=true") || !strings.Contains(rest, "one node runs alone first") {
			t.Errorf("start-rest detail: %q", rest)
		}
		c.checkMigrations("2.1.0", append(slices.Clone(fixMigrations), "upgrade-to-2.1.0/@nocobase/server"))
	})
	t.Run("upgrade", func(t *testing.T) {
		c := newCluster(t, 3, v1, nil, "")
		c.seed("2.1.0")
		end := c.run(procedures.Request{Procedure: procedures.ProcUpgrade, Version: "2.2.0"}, store.ActionContinue)
		if end.State != store.StateSucceeded {
			t.Fatalf("upgrade %s: %s", end.State, end.Error)
		}
		c.checkMigrations("2.2.0", []string{"upgrade-to-2.2.0/@nocobase/server"})
	})
	t.Run("rollback", func(t *testing.T) {
		c := newCluster(t, 3, v1, nil, "")
		c.seed("2.1.0")
		end := c.run(procedures.Request{Procedure: procedures.ProcUpgrade, Version: "2.2.0"}, store.ActionRollback)
		if end.State != store.StateRolledBack {
			t.Fatalf("rolled-back upgrade %s: %s", end.State, end.Error)
		}
		c.checkMigrations("2.1.0", []string{"upgrade-to-2.2.0/@nocobase/server"})
		// The restore took the 2.2.0 migration back out of the database.
		if _, err := os.Stat(filepath.Join(c.storage, "db", "migrations", "upgrade-to-2.2.0__@nocobase__server")); !os.IsNotExist(err) {
			t.Errorf("the 2.2.0 migration is still recorded after the roll-back: %v", err)
		}
		if d := step(end, "rb-start-rest").Detail; !strings.Contains(d, "SKIP_SAME_VERSION_UPGRADE=true") {
			t.Errorf("rb-start-rest detail: %q", d)
		}
	})
	t.Run("maintain", func(t *testing.T) {
		c := newCluster(t, 3, v1, nil, "")
		c.seed("2.1.0")
		end := c.run(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "backup"}}}, store.ActionContinue)
		if end.State != store.StateSucceeded {
			t.Fatalf("maintain %s: %s", end.State, end.Error)
		}
		c.checkMigrations("2.1.0", nil)
	})
}

// NocoBase before 2.0.0-alpha.21 has no SKIP_SAME_VERSION_UPGRADE: the
// nodes after the first start one at a time, and the detail says why.
func TestMigrationsOldVersionOneAtATime(t *testing.T) {
	host := testenv.DockerHost(t)
	v1 := testenv.NodeImage(t, host, "1.9.0")
	c := newCluster(t, 3, v1, nil, "")
	end := c.run(procedures.Request{Procedure: procedures.ProcStart}, "")
	if end.State != store.StateSucceeded {
		t.Fatalf("first start %s: %s", end.State, end.Error)
	}
	if d := step(end, "start-rest").Detail; !strings.Contains(d, "one at a time: NocoBase 1.9.0 has no SKIP_SAME_VERSION_UPGRADE") {
		t.Errorf("start-rest detail: %q", d)
	}
	c.checkMigrations("1.9.0", append(slices.Clone(fixMigrations), "upgrade-to-1.9.0/@nocobase/server"))
}

// A node with another APP_KEY is refused at preflight, naming the
// variable and the nodes, never the values; nothing is started.
func TestPreflightRefusesNodesThatDiffer(t *testing.T) {
	host := testenv.DockerHost(t)
	v1 := testenv.NodeImage(t, host, "2.1.0")
	c := newCluster(t, 3, v1, func(i int) []string {
		if i == 2 {
			return []string{"APP_KEY=another-secret"}
		}
		return nil
	}, "")
	end := c.runFailing(procedures.Request{Procedure: procedures.ProcStart})
	for _, want := range []string{"APP_KEY", c.names[0] + ", " + c.names[1], c.names[2]} {
		if !strings.Contains(end, want) {
			t.Errorf("refusal %q lacks %q", end, want)
		}
	}
	for _, leak := range []string{"the-same-secret", "another-secret", "APP_PORT", "NODE_LABEL"} {
		if strings.Contains(end, leak) {
			t.Errorf("refusal %q mentions %q", end, leak)
		}
	}
	if u := c.read("upgrades.log"); u != "" {
		t.Errorf("a node started: %s", u)
	}
}

// runFailing starts req and returns the question of the failure
// checkpoint it must stop at.
func (c *cluster) runFailing(req procedures.Request) string {
	c.t.Helper()
	req.Cluster, req.Requester = "mig", "tester"
	sub := c.eng.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.eng.Start(ctx, req)
	if err != nil {
		c.t.Fatal(err)
	}
	for {
		select {
		case ev := <-sub.C:
			if ev.Run.ID != run.ID {
				continue
			}
			switch {
			case ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil:
				return ev.Run.Checkpoint.Question
			case ev.Kind == events.RunFinished:
				c.t.Fatalf("%s finished %s, want a refusal", req.Procedure, ev.Run.State)
			}
		case <-ctx.Done():
			c.t.Fatalf("%s did not stop", req.Procedure)
		}
	}
}

// get fetches url and returns the status and body; 0 when refused.
func get(url string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
