package postgres

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// server is a throw-away PostgreSQL server that a test may stop and
// start, run as the postgres user the way scripts/test runs its own.
type server struct {
	t          testing.TB
	fsync      bool
	bin, data  string
	port       int
	url        string
	logFile    string
	runningNow bool
}

func newServer(t testing.TB, fsync bool) *server {
	t.Helper()
	bin := testenv.PostgresBin(t)
	dir := testenv.TempDir(t)
	// The server runs as postgres: it must reach its folder.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "pg")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "postgres", data).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &server{t: t, fsync: fsync, bin: bin, data: data, port: port, logFile: filepath.Join(data, "server.log"),
		url: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	s.asPostgres(fmt.Sprintf("%s/initdb -A trust --no-sync -U postgres -D %s", bin, data))
	s.start()
	t.Cleanup(func() {
		if s.runningNow {
			s.asPostgres(fmt.Sprintf("%s/pg_ctl -D %s -m immediate stop", s.bin, s.data))
		}
	})
	return s
}

func (s *server) asPostgres(cmd string) {
	s.t.Helper()
	out, err := exec.Command("su", "postgres", "-s", "/bin/sh", "-c", cmd).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(s.logFile)
		s.t.Fatalf("%s: %v\n%s\n%s", cmd, err, out, log)
	}
}

func (s *server) start() {
	s.t.Helper()
	fsync := "off"
	if s.fsync {
		fsync = "on"
	}
	s.asPostgres(fmt.Sprintf(`%s/pg_ctl -w -D %s -l %s -o "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=%s" start`,
		s.bin, s.data, s.logFile, s.port, s.data, fsync))
	s.runningNow = true
}

// stop shuts the server down the way an outage looks to clients: every
// connection is terminated.
func (s *server) stop() {
	s.t.Helper()
	s.asPostgres(fmt.Sprintf("%s/pg_ctl -w -D %s -m fast stop", s.bin, s.data))
	s.runningNow = false
}

// The database goes away in the middle of a run: calls fail promptly
// instead of hanging; unable to confirm its lease, the engine stops the
// step within half the lease time (another replica could take the run
// over after it) and says so; when the server is back the engine resumes
// the run, repeating the stopped step, decisions are delivered through
// the re-established LISTEN, and the run finishes.
func TestDatabaseOutageDuringRun(t *testing.T) {
	srv := newServer(t, false)
	w := proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3")
	fast := []Option{WithQueryTimeout(2 * time.Second), WithConnectTimeout(time.Second), withListenCheck(time.Second)}
	a := startReplica(t, srv.url, "engine-a", w, replicaOpts{leaseTTL: 3 * time.Second, poll: 500 * time.Millisecond, storeOpts: fast})
	// Another replica's store, to press buttons and watch decisions.
	other := openAt(t, srv.url, "", fast...)
	watch, err := other.WatchDecisions(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}

	block := w.BlockOn("backup")
	r, err := a.eng.Start(context.Background(), upgrade())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-block.Reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the run never reached the backup")
	}
	srv.stop()

	// Calls fail within the store's timeout, whatever the caller's.
	for _, call := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"GetRun", func(ctx context.Context) error { _, err := a.store.GetRun(ctx, r.ID); return err }},
		{"UpdateRun", func(ctx context.Context) error { return a.store.UpdateRun(ctx, r) }},
		{"Decide", func(ctx context.Context) error {
			_, err := other.Decide(ctx, store.Decision{RunID: r.ID, Checkpoint: "x", Action: store.ActionAbort})
			return err
		}},
	} {
		began := time.Now()
		err := call.fn(testCtx(t))
		if err == nil {
			t.Fatalf("%s succeeded with the server down", call.name)
		}
		if took := time.Since(began); took > 3*time.Second {
			t.Fatalf("%s took %s to fail with the server down (%v)", call.name, took, err)
		}
	}

	// Unable to confirm its lease, the engine stops the step within half
	// the lease time: another replica could take the run over after it.
	down := a.waitFor("store.unavailable", 10*time.Second, isKind(events.StoreDown))
	if !strings.Contains(down.Message, "the step was stopped") {
		t.Fatalf("store down event says %q", down.Message)
	}
	// The event goes out just before the step's context ends: the blocked
	// backup must return by itself, without the release.
	for deadline := time.Now().Add(5 * time.Second); !slices.ContainsFunc(w.Log(), func(e proctest.Entry) bool { return e.Action == "returned: backup" }); {
		if time.Now().After(deadline) {
			t.Fatal("the backup step was not stopped within 5 s of the store down event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	block.Release()
	time.Sleep(time.Second) // the run stays stopped: nothing more happens on the cluster
	before := len(w.Actions())
	time.Sleep(time.Second)
	if acts := w.Actions(); len(acts) != before || acts[len(acts)-1] != "backup" {
		t.Fatalf("the run went on with the store down: %q", acts)
	}

	srv.start()
	resumed := a.waitFor("run.resumed", 20*time.Second, isKind(events.RunResumed))
	if !strings.Contains(resumed.Message, "repeating") {
		t.Fatalf("resumed: %q", resumed.Message)
	}
	cp := a.waitFor("verify checkpoint", 15*time.Second, isCheckpoint("verify")).Run
	if _, err := other.Decide(testCtx(t), store.Decision{RunID: r.ID, Checkpoint: cp.Checkpoint.ID,
		Action: store.ActionContinue, By: "U2", Via: "slack"}); err != nil {
		t.Fatal(err)
	}
	end := a.waitFor("end of run", 15*time.Second, isKind(events.RunFinished)).Run
	if end.State != store.StateSucceeded {
		t.Fatalf("run ended %s: %s", end.State, end.Error)
	}
	checkUpgraded(t, w)
	// The backup stopped by the outage was repeated, and verified once.
	if n, v := count(w.Actions(), "backup"), count(w.Actions(), "backup-verified b1"); n != 2 || v != 1 {
		t.Fatalf("backup ran %d times across the outage (verified %d), want 2 (1)", n, v)
	}

	// The other store's watcher outlived the outage and heard the decision.
	select {
	case id := <-watch:
		if id != r.ID {
			t.Fatalf("watcher heard %q, want %s", id, r.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher heard nothing after the outage")
	}
}
