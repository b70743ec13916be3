package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
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
	after := fileSnapshotAt(t, f.storage, DefaultExcludes, time.Second)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("stopped node: %s: %q, want %q", k, after[k], v)
		}
	}
}
