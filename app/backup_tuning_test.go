package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store/sqlite"
)

// tuningFixture is a database with a table worth compressing, no session
// left on it (as while every node is stopped), and a storage folder.
type tuningFixture struct {
	dbURL, dbName, pgBin, storage string
}

func newTuningFixture(t *testing.T) tuningFixture {
	t.Helper()
	f := tuningFixture{dbURL: testenv.NewDatabase(t), pgBin: testenv.PostgresBin(t), storage: filepath.Join(testenv.TempDir(t), "storage")}
	f.dbName = f.dbURL[strings.LastIndex(f.dbURL, "/")+1:]
	pgExec(t, f.dbURL, `CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes SELECT g, repeat('nocobase keeps notes ', 40) || g FROM generate_series(1, 3000) g`)
	if err := os.MkdirAll(filepath.Join(f.storage, "uploads"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.storage, "uploads", "a.txt"), []byte("an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOCOBOT_TUNING_DB_URL", f.dbURL)
	return f
}

func pgConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pgExec(t *testing.T, url, sql string) {
	t.Helper()
	c := pgConnect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

// databaseExists asks the server whether a database of that name exists.
func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	c := pgConnect(t, testenv.PostgresURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// waitNoSession waits until the server no longer counts a session on the
// database (a closed connection's backend exits a moment later).
func waitNoSession(t *testing.T, db string) {
	t.Helper()
	c := pgConnect(t, testenv.PostgresURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer c.Close(ctx)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still on %s", n, db)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildTuned builds the cluster the app builds from a configuration with
// these backup keys, and returns its backups and destination.
func buildTuned(t *testing.T, f tuningFixture, keys string) (ports.Backups, string) {
	t.Helper()
	dir := testenv.TempDir(t)
	dest := filepath.Join(dir, "backups")
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`
store: {path: %q}
slack: {mode: "off"}
clusters:
  - name: prod
    nodes: {labels: {app: tuning}}
    load_balancer: {type: none}
    redis: {none: true} # no Docker engine to read the nodes' Redis URLs from
    backup:
      destination: %q
      database: {url_env: NOCOBOT_TUNING_DB_URL, pg_bin: %q}
      storage: {host_path: %q}
%s`, filepath.Join(dir, "nocobot.db"), dest, f.pgBin, f.storage, keys)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, cfg.Store.Path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clusters, closeClusters, err := buildClusters(cfg, st, nil, zerolog.Nop(), config.Secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeClusters)
	return clusters[0].Backups, dest
}

type tuningManifest struct {
	Database struct {
		Copy     string `json:"copy"`
		CopyGone bool   `json:"copy_gone"`
	} `json:"database"`
}

func readTuningManifest(t *testing.T, dir string) tuningManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m tuningManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// gzipLevels are the compression hints (the gzip header's XFL byte: 2
// for level 9, 4 for level 1) of a folder dump's compressed files.
func gzipLevels(t *testing.T, dir string) map[byte]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "database", "*.dat.gz"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no compressed data files in %s/database (%v)", dir, err)
	}
	out := map[byte]int{}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 10 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("%s is not a gzip file (%v)", p, err)
		}
		out[b[8]]++
	}
	return out
}

// progressLines records a backup's progress, which the database and the
// storage report at the same time.
type progressLines struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLines) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, s)
}

func (p *progressLines) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// The backup keys of a cluster reach the backup it is built with: the
// plan and the backup's kind follow in_server_copy, its files
// dump_format, the exported dump's workers and compression jobs, compress
// and compress_level, and the in-server copy outlives the export only
// with keep_copy.
func TestClusterBackupTuningFromConfiguration(t *testing.T) {
	f := newTuningFixture(t)
	ctx := context.Background()
	t.Cleanup(func() {
		pgExec(t, testenv.PostgresURL(t), `DO $$ DECLARE d text; BEGIN
  FOR d IN SELECT datname FROM pg_database WHERE datname LIKE '`+f.dbName+`\_%' LOOP
    EXECUTE format('DROP DATABASE %I WITH (FORCE)', d);
  END LOOP; END $$`)
	})
	waitNoSession(t, f.dbName)

	t.Run("copies off, stream", func(t *testing.T) {
		bk, dest := buildTuned(t, f, "      in_server_copy: false\n      dump_format: stream\n")
		if kind, why := bk.PlanKind(ctx, true); kind != ports.BackupDump || !strings.Contains(why, "in-server copies are turned off") {
			t.Fatalf("plan = %s (%s), want a dump because copies are off", kind, why)
		}
		p := &progressLines{}
		info, err := bk.Create(ctx, ports.BackupRequest{Cluster: "prod"}, p.add)
		if err != nil {
			t.Fatalf("backup: %v\n%s", err, p)
		}
		dir := filepath.Join(dest, info.ID)
		if info.Kind != ports.BackupDump {
			t.Fatalf("kind %q\n%s", info.Kind, p)
		}
		if st, err := os.Stat(filepath.Join(dir, "database.dump")); err != nil || !st.Mode().IsRegular() {
			t.Fatalf("no single-stream dump in the backup: %v\n%s", err, p)
		}
		if _, err := os.Stat(filepath.Join(dir, "database")); !os.IsNotExist(err) {
			t.Fatalf("a stream backup holds a dump folder (%v)", err)
		}
	})

	// The defaults, for contrast: an in-server copy, exported at level 1,
	// then dropped.
	t.Run("defaults", func(t *testing.T) {
		bk, dest := buildTuned(t, f, "")
		waitNoSession(t, f.dbName)
		if kind, why := bk.PlanKind(ctx, false); kind != ports.BackupCopy {
			t.Fatalf("plan = %s (%s), want an in-server copy", kind, why)
		}
		p := &progressLines{}
		info, dir := createAndExport(t, bk, dest, p)
		if info.Kind != ports.BackupCopy {
			t.Fatalf("kind %q\n%s", info.Kind, p)
		}
		if lv := gzipLevels(t, dir); lv[4] == 0 || lv[2] != 0 {
			t.Errorf("compression hints %v, want level 1 (4) only", lv)
		}
		m := readTuningManifest(t, dir)
		if !m.Database.CopyGone || databaseExists(t, m.Database.Copy) {
			t.Errorf("the copy %s outlived its export without keep_copy (manifest gone=%v)", m.Database.Copy, m.Database.CopyGone)
		}
	})

	t.Run("jobs 3, level 9, keep copy", func(t *testing.T) {
		bk, dest := buildTuned(t, f, "      jobs: 3\n      compress: while\n      compress_level: 9\n      keep_copy: true\n      dump_format: folder\n")
		waitNoSession(t, f.dbName)
		p := &progressLines{}
		info, dir := createAndExport(t, bk, dest, p)
		if info.Kind != ports.BackupCopy {
			t.Fatalf("kind %q\n%s", info.Kind, p)
		}
		if !strings.Contains(p.String(), "-j 3") {
			t.Errorf("the export does not say it dumps with 3 workers:\n%s", p)
		}
		if lv := gzipLevels(t, dir); lv[2] == 0 || lv[4] != 0 {
			t.Errorf("compression hints %v, want level 9 (2) only", lv)
		}
		m := readTuningManifest(t, dir)
		if m.Database.CopyGone || !databaseExists(t, m.Database.Copy) {
			t.Errorf("keep_copy: the copy %q is gone after the export", m.Database.Copy)
		}
	})
}

// createAndExport takes a backup and exports it, as a run does around
// the downtime, and returns it with its folder.
func createAndExport(t *testing.T, bk ports.Backups, dest string, p *progressLines) (ports.BackupInfo, string) {
	t.Helper()
	ctx := context.Background()
	info, err := bk.Create(ctx, ports.BackupRequest{Cluster: "prod"}, p.add)
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, p)
	}
	if _, err := bk.Export(ctx, info.ID, p.add); err != nil {
		t.Fatalf("export: %v\n%s", err, p)
	}
	return info, filepath.Join(dest, info.ID)
}

// config check refuses a bad backup key with one line naming it, and
// creates nothing.
func TestConfigCheckNamesABadBackupKey(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ keys, want string }{
		{"compress_level: 12", "clusters[0] (prod).backup.compress_level: 12: expected 1 (fastest) to 9 (smallest)"},
		{"compress: gzip", `clusters[0] (prod).backup.compress: "gzip": expected after, while or never`},
		{"dump_format: tar", `clusters[0] (prod).backup.dump_format: "tar": expected folder or stream`},
		{"jobs: -2", "clusters[0] (prod).backup.jobs: -2: expected 0 (the CPUs, at most 4) up to 32"},
		{"in_server_copy: false, keep_copy: true", "clusters[0] (prod).backup.keep_copy: true, but in_server_copy is false"},
	} {
		conf := filepath.Join(dir, "nocobot.yaml")
		body := fmt.Sprintf(`
store: {path: %q}
slack: {mode: "off"}
clusters:
  - name: prod
    nodes: {labels: {app: nocobase}}
    load_balancer: {type: none}
    backup: {destination: %q, database: {container: db, name: nocobase}, %s}
`, filepath.Join(dir, "n.db"), filepath.Join(dir, "b"), tt.keys)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut strings.Builder
		err := CheckConfig(context.Background(), conf, CheckOptions{}, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") || out.Len() != 0 || errOut.Len() != 0 {
			t.Errorf("%s: error %v, stdout %q, stderr %q\nwant one line containing %q", tt.keys, err, out.String(), errOut.String(), tt.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("config check left files behind: %v", entries)
		}
	}
}
