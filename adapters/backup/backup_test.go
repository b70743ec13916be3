package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

type lines struct {
	mu sync.Mutex
	l  []string
}

func (p *lines) add(s string) { p.mu.Lock(); p.l = append(p.l, s); p.mu.Unlock() }
func (p *lines) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.l, "\n")
}

type fixture struct {
	dbURL   string
	storage string
	dest    string
	// mtimePrec is the precision of modification times that survive
	// the storage source: docker cp truncates them to the second.
	mtimePrec time.Duration
}

func newFixture(t *testing.T, tables, rows int) fixture {
	t.Helper()
	f := fixture{dbURL: testenv.NewDatabase(t), dest: filepath.Join(testenv.TempDir(t), "backups")}
	f.storage = filepath.Join(testenv.TempDir(t), "storage")
	c := connect(t, f.dbURL)
	nocobaseLikeSchema(t, c, tables, rows)
	c.Close(context.Background()) // as with nodes stopped: no session
	nocobaseLikeStorage(t, f.storage)
	return f
}

func (f fixture) localOptions(t *testing.T) Options {
	return Options{
		Cluster: "prod", Dest: f.dest, DBURL: f.dbURL, PgBin: testenv.PostgresBin(t),
		StorageHostPath: f.storage, ProgressEvery: 50 * time.Millisecond,
		NoCopy: true, // dumps; copy_test.go takes in-server copies
	}
}

func create(t *testing.T, m *Manager, progress *lines) ports.BackupInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if progress == nil {
		progress = &lines{}
	}
	info, err := m.Create(ctx, ports.BackupRequest{Cluster: "prod", Version: "2.2.15", Image: "nocobase/nocobase:2.2.15", RunID: "run-1"}, progress.add)
	if err != nil {
		t.Fatalf("create: %v\nprogress:\n%s", err, progress)
	}
	return info
}

// roundTrip is the whole story for one mode: back up, migrate and change
// everything, restore, and compare what a user would compare.
func roundTrip(t *testing.T, opts Options, containers Containers, f fixture) {
	ctx := context.Background()
	m, err := New(opts, containers, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
	dbBefore := dbSnapshot(t, f.dbURL)
	filesBefore := fileSnapshotAt(t, f.storage, DefaultExcludes, f.mtimePrec)

	progress := &lines{}
	info := create(t, m, progress)
	if !info.Verified || info.Size == 0 || info.Cluster != "prod" || info.Version != "2.2.15" || info.RunID != "run-1" {
		t.Errorf("info = %+v", info)
	}
	if !strings.HasPrefix(info.ID, "prod-") {
		t.Errorf("id = %q", info.ID)
	}
	man := readManifest(t, f.dest, info.ID)
	if man.Database.Name == "" || !strings.HasPrefix(man.Database.ServerVersion, "15") || len(man.Parts) < 2 ||
		man.Parts[0].SHA256 == "" || man.Parts[1].Size == 0 || man.Image != "nocobase/nocobase:2.2.15" {
		t.Errorf("manifest = %+v", man)
	}
	if man.Storage.Files != 25 {
		t.Errorf("storage files = %d, want 25 (excluded logs, tmp, backups)", man.Storage.Files)
	}
	if !strings.Contains(progress.String(), "read back whole") {
		t.Errorf("progress = %s", progress)
	}

	migrateAndChange(t, f.dbURL)
	changeStorage(t, f.storage)
	logsBefore := fileSnapshot(t, filepath.Join(f.storage, "logs"), nil)
	if len(dbBefore.diff(dbSnapshot(t, f.dbURL))) < 5 {
		t.Fatal("the changes did not change the database")
	}

	restoreProgress := &lines{}
	start := time.Now()
	if err := m.Restore(ctx, info.ID, restoreProgress.add); err != nil {
		t.Fatalf("restore: %v\nprogress:\n%s", err, restoreProgress)
	}
	t.Logf("restore took %s", time.Since(start))
	assertSame(t, "database", dbBefore, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage", filesBefore, fileSnapshotAt(t, f.storage, DefaultExcludes, f.mtimePrec))
	// Excluded folders are not part of backups and restores leave them be.
	assertSame(t, "logs", logsBefore, fileSnapshot(t, filepath.Join(f.storage, "logs"), nil))

	list, err := m.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != info.ID || list[0].Size != info.Size {
		t.Errorf("list = %+v, %v", list, err)
	}
}

func readManifest(t *testing.T, dest, id string) Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dest, id, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	return man
}

func TestRoundTripLocal(t *testing.T) {
	f := newFixture(t, 25, 200)
	roundTrip(t, f.localOptions(t), nil, f)
}

// TestRoundTripExec runs the container modes with a stand-in for Docker
// that executes on this host; docker_test.go does the same against a real
// engine.
func TestRoundTripExec(t *testing.T) {
	f := newFixture(t, 10, 100)
	u, err := url.Parse(f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	// Exec runs on this host here, so the "container" path is the host's.
	lc := &localContainers{folders: map[string]string{"app-1:" + f.storage: f.storage}}
	opts := Options{
		Cluster: "prod", Dest: f.dest, DBContainer: "db", DBName: strings.TrimPrefix(u.Path, "/"), DBUser: u.User.Username(),
		DBHost: u.Hostname(), DBPort: port, DBPassword: "not-needed-but-sent",
		StorageContainer: "app-1", StoragePath: f.storage,
		NoCopy: true, // the stream dump through the container
	}
	roundTrip(t, opts, lc, f)
	for _, e := range lc.execs {
		if strings.Contains(e, "not-needed-but-sent") {
			t.Errorf("password on a command line: %s", e)
		}
	}
}

func TestCorruptBackupIsRefusedBeforeAnythingIsTouched(t *testing.T) {
	for _, damage := range []string{"truncated", "altered", "storage altered"} {
		t.Run(damage, func(t *testing.T) {
			f := newFixture(t, 3, 50)
			m, err := New(f.localOptions(t), nil, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			info := create(t, m, nil)
			migrateAndChange(t, f.dbURL)
			changeStorage(t, f.storage)
			dbChanged := dbSnapshot(t, f.dbURL)
			filesChanged := fileSnapshot(t, f.storage, nil)

			dir := filepath.Join(f.dest, info.ID)
			switch damage {
			case "truncated":
				p := largestDumpFile(t, dir)
				fi, _ := os.Stat(p)
				if err := os.Truncate(p, fi.Size()/2); err != nil {
					t.Fatal(err)
				}
			case "altered":
				flipByte(t, largestDumpFile(t, dir))
			case "storage altered":
				flipByte(t, filepath.Join(dir, partStorage))
			}
			_, err = m.Verify(context.Background(), info.ID)
			if err == nil || !strings.Contains(err.Error(), "failed verification") {
				t.Fatalf("verify: %v", err)
			}
			t.Log(err)
			err = m.Restore(context.Background(), info.ID, nil)
			if err == nil || !strings.Contains(err.Error(), "refused, nothing was changed") {
				t.Fatalf("restore: %v", err)
			}
			assertSame(t, "database", dbChanged, dbSnapshot(t, f.dbURL))
			assertSame(t, "storage", filesChanged, fileSnapshot(t, f.storage, nil))
		})
	}
}

// largestDumpFile is the stream dump, or the largest file of a folder
// dump.
func largestDumpFile(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, partDatabase)); err == nil {
		return filepath.Join(dir, partDatabase)
	}
	entries, err := os.ReadDir(filepath.Join(dir, partDatabaseDir))
	if err != nil {
		t.Fatal(err)
	}
	best, size := "", int64(-1)
	for _, e := range entries {
		if fi, _ := e.Info(); fi.Size() > size {
			best, size = filepath.Join(dir, partDatabaseDir, e.Name()), fi.Size()
		}
	}
	return best
}

func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x5a
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The read-back at creation is what catches a dump that breaks on the way:
// a truncated or damaged stream must fail pg_restore.
func TestDumpCheckReadsWholeDump(t *testing.T) {
	f := newFixture(t, 3, 300)
	db, err := postgresFromURL(Options{DBURL: f.dbURL, PgBin: testenv.PostgresBin(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var dump bytes.Buffer
	if err := db.dump(ctx, &dump); err != nil {
		t.Fatal(err)
	}
	if err := db.check(ctx, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("whole dump: %v", err)
	}
	// Cut in the data section, past the table of contents, which is all
	// pg_restore --list would read.
	if err := db.check(ctx, bytes.NewReader(dump.Bytes()[:dump.Len()*3/4])); err == nil {
		t.Error("a truncated dump passed the check")
	}
	damaged := bytes.Clone(dump.Bytes())
	for i := len(damaged) * 3 / 4; i < len(damaged)*3/4+64; i++ {
		damaged[i] ^= 0xff
	}
	if err := db.check(ctx, bytes.NewReader(damaged)); err == nil {
		t.Error("a damaged dump passed the check")
	}
}

func TestRestoreRefusesOtherClusterOrDatabase(t *testing.T) {
	f := newFixture(t, 2, 20)
	ctx := context.Background()
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info := create(t, m, nil)
	want := dbSnapshot(t, f.dbURL)

	// Same folder, other cluster.
	o := f.localOptions(t)
	o.Cluster = "staging"
	other, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	err = other.Restore(ctx, info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), `refused: the backup belongs to cluster "prod" (this is "staging")`) {
		t.Fatalf("err = %v", err)
	}

	// Same cluster, another database: refused, then forced.
	otherDB := testenv.NewDatabase(t)
	oc := connect(t, otherDB)
	execSQL(t, oc, "CREATE TABLE unrelated (x int); INSERT INTO unrelated VALUES (1)")
	oc.Close(ctx)
	o = f.localOptions(t)
	o.DBURL = otherDB
	into, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	err = into.Restore(ctx, info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "refused: the backup belongs to database") {
		t.Fatalf("err = %v", err)
	}
	if err := into.RestoreWith(ctx, info.ID, RestoreOptions{Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	got := dbSnapshot(t, otherDB)
	assertSame(t, "forced restore", want, got)
}

func TestRetention(t *testing.T) {
	f := newFixture(t, 1, 5)
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	var protected map[string]bool
	var protectErr error
	o := f.localOptions(t)
	o.KeepLast = 2
	o.Now = func() time.Time { return now }
	o.Protect = func(context.Context) (map[string]bool, error) { return protected, protectErr }
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, create(t, m, nil).ID)
		now = now.Add(24 * time.Hour)
	}
	if ids[0] != "prod-20261122T020000Z" {
		t.Errorf("id = %s", ids[0])
	}
	list, _ := m.List(ctx)
	if got := backupIDs(list); got != ids[2]+" "+ids[1] {
		t.Fatalf("after 3 with KeepLast 2: %s", got)
	}

	// An unfinished run's backup is never deleted.
	protected = map[string]bool{ids[1]: true}
	ids = append(ids, create(t, m, nil).ID)
	list, _ = m.List(ctx)
	if got := backupIDs(list); got != ids[3]+" "+ids[2]+" "+ids[1] {
		t.Fatalf("protected: %s", got)
	}

	// If the protected set cannot be read, nothing is deleted.
	protectErr = errors.New("store down")
	now = now.Add(24 * time.Hour)
	progress := &lines{}
	ids = append(ids, create(t, m, progress).ID)
	list, _ = m.List(ctx)
	if len(list) != 4 || !strings.Contains(progress.String(), "retention skipped") {
		t.Fatalf("list = %s, progress %s", backupIDs(list), progress)
	}

	// MaxAge: everything older goes, except the newest backup.
	protectErr, protected = nil, nil
	o.KeepLast, o.MaxAge = 0, time.Hour
	now = now.Add(30 * 24 * time.Hour)
	m2, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	// A leftover of a crash (no manifest), old enough to go.
	stale := filepath.Join(f.dest, "prod-20200101T000000Z")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(stale, now.Add(-48*time.Hour), now.Add(-48*time.Hour))
	deleted, err := m2.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, _ = m2.List(ctx)
	if got := backupIDs(list); got != ids[4] || len(deleted) != 4 {
		t.Fatalf("MaxAge: left %s, deleted %v", got, deleted)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale incomplete backup kept: %v", err)
	}
}

func backupIDs(list []ports.BackupInfo) string {
	var s []string
	for _, b := range list {
		s = append(s, b.ID)
	}
	return strings.Join(s, " ")
}

// A restore leaves the storage folder exactly as it was at the backup,
// also in a stopped node: files added since are gone. The swap runs in a
// helper that mounts the node's volumes (here a stand-in on this host).
func TestContainerStorageRestoreIsExactOnStoppedNode(t *testing.T) {
	f := newFixture(t, 1, 5)
	lc := &localContainers{folders: map[string]string{"app-1:/app/nocobase/storage": f.storage}}
	o := f.localOptions(t)
	o.StorageHostPath, o.StorageContainer = "", "app-1"
	m, err := New(o, lc, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	before := fileSnapshot(t, f.storage, DefaultExcludes)
	info := create(t, m, nil)
	changeStorage(t, f.storage)
	// Another restore attempt's staging folder is not this one's business.
	other := filepath.Join(f.storage, stagingPrefix+info.ID+"-other", "x")
	writeFile(t, other, "another attempt", 0o644, time.Now())
	lc.stopped = true
	progress := &lines{}
	if err := m.Restore(context.Background(), info.ID, progress.add); err != nil {
		t.Fatalf("%v\n%s", err, progress)
	}
	assertSame(t, "storage", before, fileSnapshot(t, f.storage, DefaultExcludes))
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another attempt's staging folder: %v", err)
	}
	if !strings.Contains(strings.Join(lc.execs, "\n"), "helper for app-1") {
		t.Errorf("no helper ran: %v", lc.execs)
	}

	// Without a helper a stopped node's folder cannot be cleared: the
	// restore fails, says why, and leaves no staging folder.
	changeStorage(t, f.storage)
	m, err = New(o, noHelper{lc}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Restore(context.Background(), info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("restore without a helper into a stopped node: %v", err)
	}
	entries, _ := os.ReadDir(f.storage)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagingPrefix) && !strings.HasSuffix(e.Name(), "-other") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestNewValidates(t *testing.T) {
	for name, o := range map[string]Options{
		"bad cluster":    {Cluster: "a/b", Dest: "/x", DBURL: "postgres://u@h/db", StorageHostPath: "/s"},
		"no db":          {Cluster: "a", Dest: "/x", StorageHostPath: "/s"},
		"both db":        {Cluster: "a", Dest: "/x", DBURL: "postgres://u@h/db", DBContainer: "db", StorageHostPath: "/s"},
		"no storage":     {Cluster: "a", Dest: "/x", DBURL: "postgres://u@h/db"},
		"bad url":        {Cluster: "a", Dest: "/x", DBURL: "ftp://u:secret@h/db", StorageHostPath: "/s"},
		"mysql no db":    {Cluster: "a", Dest: "/x", DBURL: "mysql://u:secret@h/", StorageHostPath: "/s"},
		"dialect vs url": {Cluster: "a", Dest: "/x", Dialect: "postgres", DBURL: "mysql://u:secret@h/db", StorageHostPath: "/s"},
		"bad exclude":    {Cluster: "a", Dest: "/x", DBURL: "postgres://u@h/db", StorageHostPath: "/s", Excludes: []string{"../etc"}},
		"no container":   {Cluster: "a", Dest: "/x", DBContainer: "db", DBName: "x", StorageHostPath: "/s"},
		"bad dialect":    {Cluster: "a", Dest: "/x", Dialect: "oracle", DBURL: "postgres://u@h/db", StorageHostPath: "/s"},
	} {
		if _, err := New(o, nil, testLog(t)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
	}
	db, err := postgresFromURL(Options{DBURL: "postgres://nocobase:s3cret@db:5432/nocobase?sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(db.conninfo, "s3cret") || db.password != "s3cret" || db.name() != "nocobase" {
		t.Errorf("conninfo %q password %q", db.conninfo, db.password)
	}
}

// A dump that breaks in the middle of a restore (damage the checksums did
// not see, a full disk on the server…) must leave the database as it was:
// the restore runs in one transaction and commits only after pg_restore
// read the whole dump.
func TestRestoreRollsBackWhenTheDumpBreaksMidway(t *testing.T) {
	f := newFixture(t, 5, 300)
	o := f.localOptions(t)
	o.DumpFormat = FormatStream
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info := create(t, m, nil)
	migrateAndChange(t, f.dbURL)
	changed := dbSnapshot(t, f.dbURL)

	// Cut the dump and make the manifest agree, so only pg_restore can
	// notice.
	dir := filepath.Join(f.dest, info.ID)
	p := filepath.Join(dir, partDatabase)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = b[:len(b)*3/4]
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	man := readManifest(t, f.dest, info.ID)
	sum := sha256.Sum256(b)
	man.Parts[0].Size, man.Parts[0].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
	if err := writeManifest(dir, &man); err != nil {
		t.Fatal(err)
	}

	err = m.Restore(context.Background(), info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
	assertSame(t, "database after a failed restore", changed, dbSnapshot(t, f.dbURL))
}
