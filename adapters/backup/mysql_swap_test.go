package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
)

// holdTableLock keeps a shared metadata lock on db.table from a session of
// its own (an open transaction that read it), as a forgotten client would:
// a RENAME TABLE of that table waits for it. release ends the session.
func holdTableLock(t *testing.T, db, table string) (release func()) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.MySQLBin(t), "mariadb"), "--no-defaults", "-S", testenv.MySQLSocket(t), "-uroot",
		"-N", "-B", "--unbuffered", db)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(in, "START TRANSACTION;\nSELECT COUNT(*) FROM `%s`;\nSELECT 'locked';\n", table)
	got := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "locked" {
				got <- true
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the session holding the lock did not start")
	}
	var done bool
	release = func() {
		if done {
			return
		}
		done = true
		fmt.Fprint(in, "ROLLBACK;\n")
		_ = in.Close()
		_ = cmd.Wait()
	}
	t.Cleanup(release)
	return release
}

// swapStatements lists the sessions running a RENAME TABLE into db's old
// copy, as SHOW PROCESSLIST shows them.
func swapStatements(t *testing.T, db string) string {
	t.Helper()
	return testenv.MySQLExec(t, "", "SELECT id, command, IFNULL(state, ''), LEFT(info, 60) FROM information_schema.processlist"+
		" WHERE info LIKE 'RENAME TABLE %' AND LOCATE('`"+db+"_nocobot_old`', info) > 0")
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// filesHolding lists the files under dest, outside the folder of backup
// skip, that hold every one of words.
func filesHolding(t *testing.T, dest, skip string, words ...string) []string {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(dest, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			if e != nil && e.IsDir() && e.Name() == skip {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, w := range words {
			if !bytes.Contains(b, []byte(w)) {
				return nil
			}
		}
		found = append(found, p)
		return nil
	})
	return found
}

// restoreChild is what TestMySQLRestoreChild restores, in a process of its
// own that the test kills.
type restoreChild struct {
	URL, Dest, Storage, ID string
}

const restoreChildEnv = "NOCOBOT_TEST_MYSQL_RESTORE_CHILD"

// TestMySQLRestoreChild is the restore that TestMySQLRestoreKilledInSwap
// runs in a child process and kills; alone it skips.
func TestMySQLRestoreChild(t *testing.T) {
	spec := os.Getenv(restoreChildEnv)
	if spec == "" {
		t.Skip("run as a child process by TestMySQLRestoreKilledInSwap")
	}
	var c restoreChild
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Cluster: "prod", Dest: c.Dest, Dialect: "mariadb", DBURL: c.URL, MySQLBin: testenv.MySQLBin(t),
		StorageHostPath: c.Storage}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Restore(context.Background(), c.ID, func(s string) { fmt.Println(s) })
	t.Logf("restore: %v", err)
}

// TestMySQLRestoreKilledInSwap: nocobot is killed (SIGKILL) in the middle
// of a restore's swap, after the views, triggers, routines and events were
// dropped, while its RENAME TABLE waits for a lock. Their definitions are
// on disk by then, and the Retry (the same restore again) settles what is
// left and restores: the database ends as the backup was, with every
// object, and no helper database or record is left. Once the server
// aborted the RENAME (the rename never happened), once it finished it
// after nocobot died (the old copy holds the live tables). A backup taken
// instead of the Retry settles the swap first too: it dumps the database
// whole, not one without the dropped objects.
func TestMySQLRestoreKilledInSwap(t *testing.T) {
	for _, c := range []struct {
		renamed bool
		next    string
	}{{false, "restore"}, {true, "restore"}, {true, "backup"}} {
		renamed := c.renamed
		t.Run(fmt.Sprintf("renamed=%v,then=%s", renamed, c.next), func(t *testing.T) {
			ctx := context.Background()
			f := newMySQLFixture(t, mysqlShape{Small: 5, SmallRows: 3})
			opts := f.localOptions(t, "", "")
			m, err := New(opts, nil, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			info, err := mysqlCreate(t, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := mysqlSnapshot(t, f.db)
			mysqlMigrateAndChange(t, f.db)

			release := holdTableLock(t, f.db, "t_003")
			spec, _ := json.Marshal(restoreChild{URL: opts.DBURL, Dest: f.dest, Storage: f.storage, ID: info.ID})
			child := exec.Command(os.Args[0], "-test.run=^TestMySQLRestoreChild$", "-test.v")
			child.Env = append(os.Environ(), restoreChildEnv+"="+string(spec))
			var out bytes.Buffer
			child.Stdout, child.Stderr = &out, &out
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the child's RENAME TABLE", 2*time.Minute, func() bool { return swapStatements(t, f.db) != "" })
			waiting := time.Now()
			orphan := strings.Fields(swapStatements(t, f.db))[0]
			// The drops ran: the live database has no routines now (the
			// server cannot list triggers while the RENAME waits).
			if n := testenv.MySQLExec(t, "", "SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = '"+f.db+"'"); n != "0" {
				t.Errorf("%s routines are still there while the RENAME waits", n)
			}
			// Part (b): the live definitions (not the backup's) are on disk.
			if files := filesHolding(t, f.dest, info.ID, "users_audit2", "extraView", "`extra`"); len(files) == 0 {
				t.Errorf("the live definitions are on no disk in %s while they are dropped", f.dest)
			} else {
				t.Logf("live definitions in %s", files)
			}
			if renamed {
				// Stopped, nocobot cannot go on; its client (a process of
				// its own) gets the RENAME's answer once the lock is gone.
				// Then nocobot is killed: right after the RENAME.
				if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				release()
				waitFor(t, "the RENAME TABLE to finish", 30*time.Second, func() bool { return swapStatements(t, f.db) == "" })
				if got := testenv.MySQLExec(t, "", "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '"+f.db+"_nocobot_old' AND table_name = 'newPluginTable'"); got != "1" {
					t.Fatalf("the live tables did not move to the old copy: %s", got)
				}
			}
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			t.Logf("child's output:\n%s", out.String())
			if left := helperDatabases(t, f.db); !strings.Contains(left, "_nocobot_old") {
				t.Fatalf("the killed restore left no old copy (%q): the test did not stop it where meant", left)
			}
			gone := make(chan time.Duration, 1)
			if !renamed {
				// nocobot's client outlives it (its own process group) and
				// keeps the RENAME waiting on the server: the Retry must
				// stop it before it looks. The lock goes once it is gone,
				// before the Retry's own RENAME.
				t.Logf("after the kill: %q", swapStatements(t, f.db))
				go func() {
					for strings.HasPrefix(swapStatements(t, f.db), orphan+"\t") {
						time.Sleep(100 * time.Millisecond)
					}
					gone <- time.Since(waiting)
					release()
				}()
			}

			m2, err := New(opts, nil, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			if c.next == "backup" {
				if _, err := mysqlCreate(t, m2, nil); err != nil {
					t.Fatalf("backup: %v", err)
				}
				assertSame(t, "database", before, mysqlSnapshot(t, f.db))
				if left := helperDatabases(t, f.db); left != "" {
					t.Errorf("left behind: %s", left)
				}
				return
			}

			// The Retry.
			progress := &lines{}
			// Preflight sees that the swap can be settled (with no
			// statement of it left running, which preflight leaves alone).
			if renamed {
				if err := m2.Check(ctx); err != nil {
					t.Errorf("check: %v", err)
				}
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if err := m2.Restore(rctx, info.ID, progress.add); err != nil {
				t.Fatalf("retry: %v\nprogress:\n%s", err, progress)
			}
			if !renamed {
				// Within the server's lock_wait_timeout (30 s) the Retry,
				// not the timeout, ended it.
				if d := <-gone; d > 25*time.Second {
					t.Errorf("the orphaned RENAME TABLE waited %s", d)
				}
			}
			assertSame(t, "database", before, mysqlSnapshot(t, f.db))
			if left := helperDatabases(t, f.db); left != "" {
				t.Errorf("left behind: %s", left)
			}
			if files := filesHolding(t, f.dest, info.ID, "users_audit2"); len(files) > 0 {
				t.Errorf("the swap's record is left: %s", files)
			}
		})
	}
}

// TestMySQLSwapRenameKilledOnTimeout: in the container mode the client runs
// in the database container through docker exec, which the deadline ends
// on this side only: the client stays connected and its RENAME TABLE,
// waiting for a lock, would move the tables long after the restore gave up.
// The swap kills it on the server (the processlist no longer shows it) and
// is undone: the database is as it was.
func TestMySQLSwapRenameKilledOnTimeout(t *testing.T) {
	e, host := engine(t)
	f := newMySQLFixture(t, mysqlShape{Small: 5, SmallRows: 3})
	user := testenv.NewMySQLAdmin(t, "pw")
	opts := Options{Cluster: "prod", Dest: f.dest, Dialect: "mariadb", DBContainer: runDBContainer(t, host), DBName: f.db,
		DBUser: user, DBPassword: "pw", DBHost: "127.0.0.1", DBPort: f.port, StorageHostPath: f.storage}
	m, err := New(opts, e, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mysqlCreate(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile(filepath.Join(f.dest, info.ID, partDatabase))
	if err != nil {
		t.Fatal(err)
	}
	mysqlMigrateAndChange(t, f.db)
	changed := mysqlSnapshot(t, f.db)
	release := holdTableLock(t, f.db, "t_003")

	deadline := time.Now().Add(20 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.db.(*mysql).restore(ctx, bytes.NewReader(dump)) }()
	waitFor(t, "the RENAME TABLE to wait for the lock", time.Until(deadline), func() bool { return swapStatements(t, f.db) != "" })
	var rerr error
	finished := false
	select {
	case rerr = <-done:
		finished = true
	case <-time.After(time.Until(deadline) + 10*time.Second):
	}
	left := swapStatements(t, f.db)
	release()
	if !finished {
		select {
		case rerr = <-done:
		case <-time.After(2 * time.Minute):
			t.Fatal("the restore did not return")
		}
	}
	if left != "" {
		t.Errorf("the RENAME TABLE outlived its client's deadline on the server:\n%s", left)
	}
	if rerr == nil || !strings.Contains(rerr.Error(), "was killed") || !strings.Contains(rerr.Error(), "nothing was changed") || strings.Contains(rerr.Error(), "\n") {
		t.Errorf("restore: %v", rerr)
	}
	t.Logf("error: %v", rerr)
	assertSame(t, "database", changed, mysqlSnapshot(t, f.db))
	if left := helperDatabases(t, f.db); left != "" {
		t.Errorf("left behind: %s", left)
	}
}

// TestMySQLRestoreRefusesDefinerItCannotSet: the database holds a view,
// triggers, routines and an event defined by root; the restoring user has
// every right on the database and its helper databases but not SET USER.
// Preflight and the restore refuse in one line naming the object and its
// definer, and nothing changes; with SET USER the check passes.
func TestMySQLRestoreRefusesDefinerItCannotSet(t *testing.T) {
	ctx := context.Background()
	f := newMySQLFixture(t, mysqlShape{Small: 3, SmallRows: 2})
	root, err := New(f.localOptions(t, "", ""), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mysqlCreate(t, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	user := testenv.NewMySQLUser(t, f.db, "pw")
	helpers := "`" + strings.ReplaceAll(f.db, "_", `\_`) + `\_nocobot\_%` + "`.*"
	testenv.MySQLExec(t, "", "GRANT ALL ON "+helpers+" TO '"+user+"'@'127.0.0.1'; GRANT ALL ON "+helpers+" TO '"+user+"'@'localhost'")
	m, err := New(f.localOptions(t, user, "pw"), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	before := mysqlSnapshot(t, f.db)
	filesBefore := fileSnapshot(t, f.storage, DefaultExcludes)
	want := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "view `activeUsers`") || !strings.Contains(err.Error(), "root@localhost") ||
			!strings.Contains(err.Error(), "SET USER") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
	want("check", m.Check(ctx))
	err = m.Restore(ctx, info.ID, nil)
	want("restore", err)
	if err != nil && !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("restore: %v", err)
	}
	assertSame(t, "database", before, mysqlSnapshot(t, f.db))
	assertSame(t, "storage", filesBefore, fileSnapshot(t, f.storage, DefaultExcludes))
	if left := helperDatabases(t, f.db); left != "" {
		t.Errorf("left behind: %s", left)
	}

	testenv.MySQLExec(t, "", "GRANT SET USER ON *.* TO '"+user+"'@'127.0.0.1'")
	if err := m.Check(ctx); err != nil {
		t.Errorf("check with SET USER: %v", err)
	}
}

// TestMySQLRestoreSettlesLeftoverOld: an old copy that an earlier restore
// left without a record is dropped by the next restore when it is empty,
// and refused in one line, with nothing changed, when it holds tables.
func TestMySQLRestoreSettlesLeftoverOld(t *testing.T) {
	ctx := context.Background()
	f := newMySQLFixture(t, mysqlShape{Small: 3, SmallRows: 2})
	m, err := New(f.localOptions(t, "", ""), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := mysqlCreate(t, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := mysqlSnapshot(t, f.db)
	old := "`" + f.db + "_nocobot_old`"

	testenv.MySQLExec(t, "", "CREATE DATABASE "+old+"; CREATE TABLE "+old+".users (id int)")
	mysqlMigrateAndChange(t, f.db)
	changed := mysqlSnapshot(t, f.db)
	if err := m.Check(ctx); err == nil || !strings.Contains(err.Error(), f.db+"_nocobot_old, left by an earlier restore, is not empty") {
		t.Errorf("check: %v", err)
	}
	err = m.Restore(ctx, info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "no record of that restore") || !strings.Contains(err.Error(), "nothing was changed") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("restore: %v", err)
	}
	t.Logf("restore: %v", err)
	assertSame(t, "database", changed, mysqlSnapshot(t, f.db))

	testenv.MySQLExec(t, "", "DROP TABLE "+old+".users")
	if err := m.Check(ctx); err != nil {
		t.Errorf("check with an empty old copy: %v", err)
	}
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatalf("restore with an empty old copy: %v", err)
	}
	assertSame(t, "database", before, mysqlSnapshot(t, f.db))
	if left := helperDatabases(t, f.db); left != "" {
		t.Errorf("left behind: %s", left)
	}
}
