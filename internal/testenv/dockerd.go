package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dockerd is a throw-away Docker engine of one test, in a folder of its
// own, for tests that must restart the engine (the shared one of
// scripts/test must keep running). It is started the way scripts/test
// starts its own: vfs storage, no bridge, no iptables.
type Dockerd struct {
	Host string // unix:///…/d.sock
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// OwnDockerd starts an engine and stops it (and removes its folder) when
// the test ends. It needs what scripts/test needs: the dockerd binary and
// root.
func OwnDockerd(t testing.TB) *Dockerd {
	t.Helper()
	DockerHost(t) // skips outside scripts/test, like every engine test
	if _, err := exec.LookPath("dockerd"); err != nil || os.Geteuid() != 0 {
		t.Fatalf("OwnDockerd needs dockerd and root (dockerd: %v, uid %d)", err, os.Geteuid())
	}
	// Short (the engine's sockets live below it), and inside scripts/test's
	// folder so that its clean-up unmounts whatever a killed test leaves.
	dir, err := os.MkdirTemp(os.Getenv("NOCOBOT_TEST_TMP"), "dkd")
	if err != nil {
		t.Fatal(err)
	}
	d := &Dockerd{Host: "unix://" + filepath.Join(dir, "d.sock"), dir: dir}
	t.Cleanup(func() {
		if d.cmd != nil {
			// Running containers would keep mounts below the folder busy.
			if ids, err := docker(d.Host, nil, "ps", "-aq"); err == nil && ids != "" {
				_, _ = docker(d.Host, nil, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
			}
		}
		d.stop()
		unmountBelow(dir)
		_ = os.RemoveAll(dir)
	})
	d.Start(t)
	return d
}

// Start starts the engine (again) on the same data and waits until it
// answers.
func (d *Dockerd) Start(t testing.TB) {
	t.Helper()
	if d.cmd != nil {
		t.Fatal("dockerd already running")
	}
	logf, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("dockerd", "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
		"--ip-forward=false", "--ip-masq=false", "-H", d.Host,
		"--data-root", filepath.Join(d.dir, "data"), "--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "docker.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := docker(d.Host, nil, "version"); err == nil {
			return
		}
		select {
		case <-d.done:
			b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
			t.Fatalf("dockerd exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("dockerd did not answer within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the engine the way a host shutdown or a package upgrade
// does (SIGTERM) and waits until it has exited.
func (d *Dockerd) Stop(t testing.TB) {
	t.Helper()
	d.stop()
}

func (d *Dockerd) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
	unmountBelow(filepath.Join(d.dir, "exec", "netns"))
}

// unmountBelow lazily unmounts what the engine left mounted below dir
// (the default network namespace, container layers), deepest first.
func unmountBelow(dir string) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], dir) {
			mounts = append(mounts, fields[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "unmount %s: %v\n", m, err)
		}
	}
}
