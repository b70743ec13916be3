package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

func testLog(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func execSQL(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

// nocobaseLikeSchema builds a database shaped like NocoBase's: many tables
// with camelCase quoted names, jsonb options, bigserial ids, a free-standing
// sequence, bytea, an enum, a view, foreign keys, a second schema. rows is
// the number of rows per generated table.
func nocobaseLikeSchema(t *testing.T, c *pgx.Conn, tables, rows int) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`
CREATE TYPE "publishStatus" AS ENUM ('draft', 'published', 'archived');
CREATE SEQUENCE "globalSort" START 1000 INCREMENT 7;
CREATE TABLE users (
  id bigserial PRIMARY KEY, email varchar(255) UNIQUE, nickname varchar(255),
  roles jsonb NOT NULL DEFAULT '[]', "createdAt" timestamptz NOT NULL DEFAULT now(), sort bigint);
CREATE TABLE attachments (
  id bigserial PRIMARY KEY, "createdById" bigint REFERENCES users(id) ON DELETE SET NULL,
  filename text, meta jsonb, data bytea, mimetype varchar(255), size integer);
CREATE TABLE collections (name varchar(255) PRIMARY KEY, options jsonb, sort integer);
CREATE TABLE fields (key varchar(255) PRIMARY KEY, "collectionName" varchar(255) REFERENCES collections(name), options jsonb);
CREATE TABLE "applicationPlugins" (id serial PRIMARY KEY, name varchar(255) UNIQUE, "packageName" varchar(255),
  enabled boolean, installed boolean, "builtIn" boolean, version varchar(255), options jsonb);
CREATE TABLE migrations (name varchar(255) PRIMARY KEY, "createdAt" timestamptz DEFAULT now());
CREATE INDEX users_roles ON users USING gin (roles);
CREATE VIEW "activeUsers" AS SELECT id, email FROM users WHERE roles <> '[]';
CREATE SCHEMA audit;
CREATE TABLE audit.logs (id bigserial PRIMARY KEY, action text, changes jsonb, at timestamptz);
`)
	fmt.Fprintf(&b, `
INSERT INTO users (email, nickname, roles, sort)
  SELECT 'user'||i||'@example.com', 'Ünïcødé '||i, jsonb_build_array('member', 'r'||(i%%5)), nextval('"globalSort"')
  FROM generate_series(1, %[1]d) i;
INSERT INTO attachments ("createdById", filename, meta, data, mimetype, size)
  SELECT 1 + i %% %[1]d, 'file-'||i||'.png', jsonb_build_object('w', i, 'h', i*2, 'tags', jsonb_build_array('a', i)),
    decode(repeat(md5(i::text), 8), 'hex'), 'image/png', i*100
  FROM generate_series(1, %[1]d) i;
INSERT INTO collections SELECT 'c'||i, jsonb_build_object('title', 'Collection '||i, 'fields', i), i FROM generate_series(1, 20) i;
INSERT INTO fields SELECT 'f'||i, 'c'||(1 + i %% 20), jsonb_build_object('type', 'string', 'interface', 'input', 'n', i) FROM generate_series(1, 200) i;
INSERT INTO "applicationPlugins" (name, "packageName", enabled, installed, "builtIn", version, options)
  SELECT 'p'||i, '@nocobase/plugin-p'||i, i %% 3 <> 0, true, i %% 2 = 0, '2.2.15', '{}' FROM generate_series(1, 77) i;
INSERT INTO migrations (name) SELECT '2024'||lpad(i::text, 4, '0')||'-migration' FROM generate_series(1, 50) i;
INSERT INTO audit.logs (action, changes, at) SELECT 'update', jsonb_build_object('i', i), now() - i * interval '1 hour' FROM generate_series(1, 100) i;
`, rows)
	for i := 1; i <= tables; i++ {
		fmt.Fprintf(&b, `
CREATE TABLE "t_%02[1]d" (id bigserial PRIMARY KEY, title text, payload jsonb, amount numeric(12,2), flag boolean,
  "createdAt" timestamptz, blob bytea, status "publishStatus", "userId" bigint REFERENCES users(id));
INSERT INTO "t_%02[1]d" (title, payload, amount, flag, "createdAt", blob, status, "userId")
  SELECT 'row '||g||E' with\ttab and\nnewline', jsonb_build_object('g', g, 'nested', jsonb_build_object('x', g*%[1]d)),
    g * 1.25, g %% 2 = 0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
    CASE WHEN g %% 10 = 0 THEN NULL ELSE decode(md5(g::text || '%[1]d'), 'hex') END,
    (ARRAY['draft','published','archived'])[1 + g %% 3]::"publishStatus", 1 + g %% %[2]d
  FROM generate_series(1, %[2]d) g;
`, i, rows)
	}
	execSQL(t, c, b.String())
}

// snapshot is what a user would compare before and after a restore: the
// list of relations, every column, a checksum of every table's rows and
// every sequence's state.
type snapshot map[string]string

func dbSnapshot(t *testing.T, url string) snapshot {
	t.Helper()
	c := connect(t, url)
	defer c.Close(context.Background()) // no session left behind: in-server copies need none
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := snapshot{}
	query := func(sql string, each func(vals []any)) {
		t.Helper()
		rows, err := c.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			each(v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var tables []string
	query(`SELECT table_schema, table_name, table_type FROM information_schema.tables
	        WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`, func(v []any) {
		s["relation "+v[0].(string)+"."+v[1].(string)] = v[2].(string)
		if v[2].(string) == "BASE TABLE" {
			tables = append(tables, pgx.Identifier{v[0].(string), v[1].(string)}.Sanitize())
		}
	})
	query(`SELECT table_schema||'.'||table_name||'.'||column_name, data_type||' '||is_nullable||' '||coalesce(column_default, '')
	        FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`, func(v []any) {
		s["column "+v[0].(string)] = v[1].(string)
	})
	query(`SELECT schemaname||'.'||sequencename, coalesce(last_value::text, 'not called') FROM pg_sequences`, func(v []any) {
		s["sequence "+v[0].(string)] = v[1].(string)
	})
	query(`SELECT nspname, coalesce(nspacl::text, ''), pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'`, func(v []any) {
		s["schema "+v[0].(string)] = v[1].(string) + " owner " + v[2].(string)
	})
	for _, tbl := range tables {
		var n int64
		var sum string
		err := c.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '') FROM `+tbl+` r`).Scan(&n, &sum)
		if err != nil {
			t.Fatal(err)
		}
		s["rows "+tbl] = fmt.Sprintf("%d %s", n, sum)
	}
	return s
}

func (s snapshot) diff(o snapshot) []string {
	var d []string
	for k, v := range s {
		if ov, ok := o[k]; !ok {
			d = append(d, "missing after: "+k)
		} else if ov != v {
			d = append(d, fmt.Sprintf("changed: %s: %q -> %q", k, v, ov))
		}
	}
	for k := range o {
		if _, ok := s[k]; !ok {
			d = append(d, "new after: "+k)
		}
	}
	sort.Strings(d)
	return d
}

func assertSame(t *testing.T, what string, before, after snapshot) {
	t.Helper()
	if d := before.diff(after); len(d) > 0 {
		if len(d) > 20 {
			d = d[:20]
		}
		t.Fatalf("%s differs:\n%s", what, strings.Join(d, "\n"))
	}
}

// migrateAndChange is what happens to a database after a backup: an
// upgrade's migrations and users' edits.
func migrateAndChange(t *testing.T, url string) {
	t.Helper()
	c := connect(t, url)
	defer c.Close(context.Background())
	execSQL(t, c, `
INSERT INTO users (email, nickname, sort) VALUES ('late@example.com', 'late', nextval('"globalSort"'));
UPDATE attachments SET meta = meta || '{"edited": true}', data = '\xdeadbeef' WHERE id % 3 = 0;
DELETE FROM "t_01" WHERE id % 2 = 0;
DROP TABLE "t_02";
ALTER TABLE users ADD COLUMN phone varchar(32) DEFAULT '000';
CREATE TABLE "newPluginTable" (id bigserial PRIMARY KEY, v jsonb);
INSERT INTO "newPluginTable" (v) VALUES ('{"a":1}');
INSERT INTO migrations (name) VALUES ('20250101-upgrade-to-2.3');
SELECT setval('"globalSort"', 999999);
CREATE SCHEMA extra;
CREATE TABLE extra.x (id int);
UPDATE audit.logs SET action = 'changed';
GRANT CREATE ON SCHEMA public TO PUBLIC;
`)
}

// fileSnapshot records every path below root (except excludes) with its
// kind, mode, modification time, size and content hash.
func fileSnapshot(t *testing.T, root string, excludes []string) snapshot {
	return fileSnapshotAt(t, root, excludes, 0)
}

// fileSnapshotAt records modification times truncated to prec (0: as is).
func fileSnapshotAt(t *testing.T, root string, excludes []string, prec time.Duration) snapshot {
	t.Helper()
	s := snapshot{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if excluded(filepath.ToSlash(rel), excludes) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%s mtime=%s", fi.Mode(), fi.ModTime().Truncate(prec).UTC().Format(time.RFC3339Nano))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			v += fmt.Sprintf(" size=%d sha=%s", len(b), hex.EncodeToString(h[:8]))
		}
		s[filepath.ToSlash(rel)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, p, content string, mode fs.FileMode, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// nocobaseLikeStorage fills a storage folder the way a NocoBase node does.
func nocobaseLikeStorage(t *testing.T, root string) {
	t.Helper()
	base := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	writeFile(t, filepath.Join(root, "apps/main/jwt_secret.dat"), "jwt-secret-bytes", 0o600, base)
	writeFile(t, filepath.Join(root, "apps/main/aes_key.dat"), "aes-key-bytes", 0o400, base.Add(time.Second))
	for i := 0; i < 20; i++ {
		writeFile(t, filepath.Join(root, fmt.Sprintf("uploads/2025/%02d/file-%d.png", i%4, i)), strings.Repeat(fmt.Sprintf("png%d", i), 500+i*50), 0o644, base.Add(time.Duration(i)*time.Hour))
	}
	writeFile(t, filepath.Join(root, "plugins/@my/plugin-x/package.json"), `{"name":"@my/plugin-x"}`, 0o644, base)
	writeFile(t, filepath.Join(root, "plugins/@my/plugin-x/bin/run.sh"), "#!/bin/sh\necho hi\n", 0o755, base)
	writeFile(t, filepath.Join(root, "uploads/empty.txt"), "", 0o640, base)
	if err := os.Symlink("2025/00/file-0.png", filepath.Join(root, "uploads/latest.png")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "logs/main/2025-03-04.log"), "log line\n", 0o644, base)
	writeFile(t, filepath.Join(root, "tmp/upload-123"), "partial", 0o644, base)
	writeFile(t, filepath.Join(root, "backups/main/old.nbdata"), "nocobase's own backup", 0o644, base)
	if err := os.Chmod(filepath.Join(root, "plugins/@my"), 0o750); err != nil {
		t.Fatal(err)
	}
	// Folder times last: writing files into them changed them.
	for i, d := range []string{"uploads/2025/00", "uploads/2025", "uploads", "apps/main", "apps", "plugins/@my/plugin-x", "plugins/@my", "plugins"} {
		tm := base.Add(time.Duration(-i) * 24 * time.Hour)
		if err := os.Chtimes(filepath.Join(root, d), tm, tm); err != nil {
			t.Fatal(err)
		}
	}
}

// changeStorage is what users and plugins do to storage after a backup.
func changeStorage(t *testing.T, root string) {
	t.Helper()
	now := time.Now()
	writeFile(t, filepath.Join(root, "uploads/2025/01/file-1.png"), "overwritten", 0o666, now)
	if err := os.Remove(filepath.Join(root, "uploads/2025/02/file-2.png")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "uploads/new/after-backup.png"), "new", 0o644, now)
	if err := os.Chmod(filepath.Join(root, "apps/main/jwt_secret.dat"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "plugins")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "logs/main/2025-03-05.log"), "newer log line\n", 0o644, now)
}

// localContainers stands in for the Docker adapter where the test needs no
// engine: "exec" runs the command on this host, and the copies use tar on
// a host folder mapped from the container path, with docker cp's shapes.
type localContainers struct {
	mu      sync.Mutex
	execs   []string
	folders map[string]string // "container:path" -> host folder
	stopped bool              // exec fails, as on a stopped container
}

func (l *localContainers) Exec(ctx context.Context, container string, cmd []string, stdin io.Reader, stdout io.Writer) error {
	l.mu.Lock()
	l.execs = append(l.execs, container+": "+strings.Join(cmd[:2], " "))
	stopped := l.stopped
	l.mu.Unlock()
	if stopped {
		return fmt.Errorf("%s: container is not running", container)
	}
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	if bin := os.Getenv("NOCOBOT_TEST_PG_BIN"); bin != "" {
		c.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	}
	c.Stdin, c.Stdout = stdin, stdout
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s: exec: %w: %s", container, err, stderr.String())
	}
	return nil
}

// RunWithVolumesOf stands in for a helper container: it runs on this host
// whether or not the container is "stopped".
func (l *localContainers) RunWithVolumesOf(ctx context.Context, container, path string, cmd []string) error {
	d, err := l.folder(container, path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.execs = append(l.execs, "helper for "+container+": "+strings.Join(cmd[:2], " "))
	l.mu.Unlock()
	cmd = slices.Clone(cmd)
	for i, a := range cmd {
		if a == path {
			cmd[i] = d // the helper sees the volume where the container does
		}
	}
	out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("helper: %w: %s", err, out)
	}
	return nil
}

// noHelper hides the helper: only Exec in the container can change its
// storage, as with storage in the container's own file system.
type noHelper struct{ *localContainers }

func (n noHelper) RunWithVolumesOf() {}

func (l *localContainers) folder(container, path string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.folders[container+":"+path]
	if !ok {
		return "", fmt.Errorf("%s: no such path %s", container, path)
	}
	return d, nil
}

func (l *localContainers) CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error) {
	d, err := l.folder(container, path)
	if err != nil {
		return nil, err
	}
	// docker cp: one entry named after the folder, contents below.
	cmd := exec.CommandContext(ctx, "tar", "-C", filepath.Dir(d), "--format=pax", "-cf", "-", filepath.Base(d))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return readCloser{out, func() error { out.Close(); return cmd.Wait() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

func (l *localContainers) CopyTo(ctx context.Context, container, dir string, tarStream io.Reader) error {
	d, err := l.folder(container, dir)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "tar", "-C", d, "-xpf", "-")
	cmd.Stdin = tarStream
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// smallDest is a backup destination of size ("96k", "48m"): a tmpfs of
// its own, so that a test can fill it. It skips where mounting is not
// allowed.
func smallDest(t *testing.T, size string) string {
	t.Helper()
	dest := filepath.Join(testenv.TempDir(t), "small")
	if err := os.Mkdir(dest, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dest).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dest).Run() })
	return dest
}
