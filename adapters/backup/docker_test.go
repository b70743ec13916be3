package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/internal/testenv"
)

var _ Containers = (*docker.Engine)(nil)

var hostUsrOnce sync.Mutex

// hostUsrImage imports a tiny image whose /bin, /lib, /lib64 and /sbin
// point into /usr, so that a container running it with the host's /usr
// mounted read-only has the host's sh, tar, pg_dump, pg_restore and psql:
// a database container's tools without a registry.
func hostUsrImage(t *testing.T, host string) string {
	t.Helper()
	const ref = "nocobot/hostusr:1"
	hostUsrOnce.Lock()
	defer hostUsrOnce.Unlock()
	if _, err := exec.Command("docker", "-H", host, "image", "inspect", ref).Output(); err == nil {
		return ref
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, d := range []string{"usr", "etc", "tmp", "dev", "proc", "sys", "root", "var", "var/run", "run"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: mtime})
	}
	for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: l, Linkname: "usr/" + l, Mode: 0o777, ModTime: mtime})
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999::/tmp:/bin/sh\n")
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: mtime})
	tw.Write(passwd)
	tw.Close()
	pgBin := testenv.PostgresBin(t)
	cmd := exec.Command("docker", "-H", host, "import", "--change", "ENV PATH="+pgBin+":/usr/bin:/usr/sbin", "-", ref)
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v: %s", err, out)
	}
	return ref
}

// runDBContainer starts a stand-in for the database container: the host's
// pg tools, host networking, so "127.0.0.1:<port>" is the test server.
func runDBContainer(t *testing.T, host string) string {
	t.Helper()
	img := hostUsrImage(t, host)
	name := fmt.Sprintf("db-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	testenv.Docker(t, host, "run", "-d", "--name", name, "--network", "host", "-v", "/usr:/usr:ro",
		"--label", "nocobot.test=backup", img, "/usr/bin/sleep", "infinity")
	t.Cleanup(func() { exec.Command("docker", "-H", host, "rm", "-f", name).Run() })
	return name
}

func engine(t *testing.T) (*docker.Engine, string) {
	t.Helper()
	host := testenv.DockerHost(t)
	e, err := docker.NewEngine(docker.EngineOptions{Host: host}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, host
}

// TestRoundTripDocker is the default deployment: pg_dump and pg_restore
// through Docker exec in the database container, storage copied out of and
// into a node container whose storage folder is a bind mount, as in
// NocoBase's compose examples.
func TestRoundTripDocker(t *testing.T) {
	e, host := engine(t)
	f := newFixture(t, 10, 100)
	f.mtimePrec = time.Second // docker cp's tar streams carry whole seconds
	db := runDBContainer(t, host)
	node := testenv.RunNode(t, host, testenv.NodeSpec{
		Image:  testenv.NodeImage(t, host, "2.2.15"),
		Mounts: []string{f.storage + ":/app/nocobase/storage"},
	})
	u, err := url.Parse(f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	opts := Options{
		Cluster: "prod", Dest: f.dest,
		DBContainer: db, DBName: strings.TrimPrefix(u.Path, "/"), DBUser: "postgres", DBHost: "127.0.0.1", DBPort: port,
		DBPassword:       "sent-through-stdin",
		StorageContainer: node.Name,
		NoCopy:           true, // the stream dump through the container
	}
	roundTrip(t, opts, e, f)

	// The nodes are stopped during an upgrade's backup: the copy works on
	// a stopped container.
	testenv.Docker(t, host, "stop", "-t", "5", node.Name)
	m, err := New(opts, e, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := fileSnapshotAt(t, f.storage, DefaultExcludes, time.Second)
	info := create(t, m, nil)
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	changeStorage(t, f.storage)
	progress := &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("restore into a stopped node: %v\n%s", err, progress)
	}
	// Exact: files added since the backup are gone too.
	assertSame(t, "storage restored into a stopped node", before, fileSnapshotAt(t, f.storage, DefaultExcludes, time.Second))
	if out := testenv.Docker(t, host, "ps", "-aq", "--filter", "label="+helperLabel); out != "" {
		t.Errorf("helper containers left: %s", out)
	}
}

// TestRestoreIntoStoppedNodeVolume is the default deployment's storage: a
// named Docker volume of a node that is not running. After a restore the
// volume holds exactly the backup's files: those added since are gone, the
// rest is byte for byte as it was.
func TestRestoreIntoStoppedNodeVolume(t *testing.T) {
	e, host := engine(t)
	f := newFixture(t, 2, 20)
	vol := fmt.Sprintf("nbstorage-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	t.Cleanup(func() { exec.Command("docker", "-H", host, "volume", "rm", "-f", vol).Run() })
	node := testenv.RunNode(t, host, testenv.NodeSpec{
		Image: testenv.NodeImage(t, host, "2.2.15"), Mounts: []string{vol + ":" + DefaultStoragePath}, Created: true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	put := func(root string) {
		t.Helper()
		var buf bytes.Buffer
		if _, err := tarHostFolder(ctx, root, nil, &buf, func(string) {}); err != nil {
			t.Fatal(err)
		}
		if err := e.CopyTo(ctx, node.Name, DefaultStoragePath, &buf); err != nil {
			t.Fatal(err)
		}
	}
	get := func() snapshot {
		t.Helper()
		rc, err := e.CopyFrom(ctx, node.Name, DefaultStoragePath)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var buf bytes.Buffer
		if _, err := retar(ctx, rc, nil, &buf); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := extractTo(ctx, &buf, dir); err != nil {
			t.Fatal(err)
		}
		return fileSnapshotAt(t, dir, DefaultExcludes, time.Second)
	}
	put(f.storage)
	want := fileSnapshotAt(t, f.storage, DefaultExcludes, time.Second)
	assertSame(t, "volume before the backup", want, get())

	o := f.localOptions(t)
	o.StorageHostPath, o.StorageContainer = "", node.Name
	m, err := New(o, e, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info := create(t, m, nil)

	added := t.TempDir()
	writeFile(t, filepath.Join(added, "uploads/new/after-backup.png"), "new upload", 0o644, time.Now())
	writeFile(t, filepath.Join(added, "uploads/2025/01/file-1.png"), "overwritten", 0o644, time.Now())
	writeFile(t, filepath.Join(added, "plugins/@new/plugin-y/package.json"), "{}", 0o644, time.Now())
	put(added)
	changed := get()
	if _, ok := changed["uploads/new/after-backup.png"]; !ok {
		t.Fatal("the added file did not reach the volume")
	}

	progress := &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("restore into a stopped node's volume: %v\n%s", err, progress)
	}
	assertSame(t, "volume after the restore", want, get())
	if st := testenv.Docker(t, host, "inspect", "-f", "{{.State.Status}}", node.Name); st != "created" {
		t.Errorf("node state %q: the restore must not start it", st)
	}
	if out := testenv.Docker(t, host, "ps", "-aq", "--filter", "label="+helperLabel); out != "" {
		t.Errorf("helper containers left: %s", out)
	}
}
