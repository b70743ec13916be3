package testenv

// Helpers to run stand-in NocoBase nodes (internal/fakenocobase) on the
// test engine. They drive the docker CLI rather than the Go client so that
// test binaries which only need an image do not pay for compiling the
// Docker client.
//
// Typical use:
//
//	host := testenv.DockerHost(t)
//	img := testenv.NodeImage(t, host, "1.0.0")
//	n := testenv.RunNode(t, host, testenv.NodeSpec{Image: img, Labels: map[string]string{"app": "x"}})
//	// n.URL answers /api/__health_check once the node has booted.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NodeImageRepo is the repository NodeImage tags its images in.
const NodeImageRepo = "nocobot/fakenocobase"

// Docker runs the docker CLI against host and returns its trimmed stdout;
// a failure fails the test with the CLI's stderr.
func Docker(t testing.TB, host string, args ...string) string {
	t.Helper()
	out, err := docker(host, nil, args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func docker(host string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

var (
	fakeOnce sync.Once
	fakeBin  []byte
	fakeErr  error

	imageMu sync.Mutex // serialises imports within one test process
)

// FakeNocoBaseBinary returns the static fakenocobase binary, built once
// per test process (CGO_ENABLED=0, so it runs in an image without libc).
func FakeNocoBaseBinary(t testing.TB) []byte {
	t.Helper()
	fakeOnce.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
			fakeErr = fmt.Errorf("cannot find the module root (go env GOMOD: %q): %v", gomod, err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		dir, err := os.MkdirTemp("", "fakenocobase-")
		if err != nil {
			fakeErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "fakenocobase")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./internal/fakenocobase")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fakeErr = fmt.Errorf("go build fakenocobase: %v\n%s", err, b)
			return
		}
		fakeBin, fakeErr = os.ReadFile(out)
	})
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
	return fakeBin
}

// nodeRootfs is the tarball of a minimal root filesystem: fakenocobase as
// /usr/local/bin/fakenocobase, and busybox (if the host has the static
// one) with its applets in /bin, so tests can exec sh, cat, head, tar…
func nodeRootfs(t testing.TB) []byte {
	t.Helper()
	bin := FakeNocoBaseBinary(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0) // fixed, so the tarball's hash is a content hash
	add := func(h *tar.Header, body []byte) {
		h.ModTime = mtime
		h.Format = tar.FormatPAX
		if body != nil {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if body != nil {
			if _, err := tw.Write(body); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "usr", "usr/local", "usr/local/bin", "app", "app/nocobase", "app/nocobase/storage"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte("root:x:0:\nnogroup:x:65534:\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/local/bin/fakenocobase", Mode: 0o755}, bin)
	if bb, err := os.ReadFile("/bin/busybox"); err == nil {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, bb)
		if list, err := exec.Command("/bin/busybox", "--list").Output(); err == nil {
			applets := strings.Fields(string(list))
			sort.Strings(applets)
			for _, a := range applets {
				if a == "busybox" || strings.Contains(a, "/") {
					continue
				}
				add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// NodeImage returns the reference of an image of a stand-in NocoBase node
// reporting version, imported into the engine at host if it is not there
// yet: "nocobot/fakenocobase:<version>". Its entrypoint is fakenocobase
// (PID 1, stops promptly on SIGTERM); NOCOBASE_VERSION is baked into the
// image's environment, so a container re-created on another image reports
// that image's version. The image carries the label nocobot.test.content
// (a hash of its content), so repeated calls reuse it.
func NodeImage(t testing.TB, host, version string) string {
	t.Helper()
	if !versionRE.MatchString(version) {
		t.Fatalf("NodeImage: %q is not a valid tag", version)
	}
	ref := NodeImageRepo + ":" + version
	imageMu.Lock()
	defer imageMu.Unlock()
	rootfs := nodeRootfs(t)
	sum := sha256.Sum256(append(rootfs, version...))
	hash := hex.EncodeToString(sum[:8])
	if have, err := docker(host, nil, "image", "inspect", "--format", `{{index .Config.Labels "nocobot.test.content"}}`, ref); err == nil && have == hash {
		return ref
	}
	changes := []string{
		"ENV PATH=/usr/local/bin:/bin",
		"ENV NOCOBASE_VERSION=" + version,
		`ENTRYPOINT ["/usr/local/bin/fakenocobase"]`,
		"WORKDIR /app/nocobase",
		"EXPOSE 13000",
		"LABEL nocobot.test.content=" + hash,
		"LABEL org.opencontainers.image.version=" + version,
	}
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	args = append(args, "-", ref)
	if _, err := docker(host, rootfs, args...); err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	return ref
}

// NodeSpec describes a stand-in node for RunNode. Only Image is required.
type NodeSpec struct {
	Name   string            // container name; default "node-<n>-<pid>"
	Image  string            // e.g. from NodeImage
	Port   int               // loopback port to listen on; default FreePort
	Labels map[string]string // extra labels (RunNode adds nocobot.url and nocobot.test)
	Env    []string          // extra KEY=VALUE, e.g. NOCOBASE_BOOT_TIME=3s
	Mounts []string          // docker run -v values, e.g. dir+":/app/nocobase/storage"
	Args   []string          // extra docker run flags placed before the image, e.g. "--restart=unless-stopped"
	Cmd    []string          // arguments after the image (flags of fakenocobase)
	// Created, if true, only creates the container (docker create).
	Created bool
}

// RunningNode is what RunNode started.
type RunningNode struct {
	Name string
	ID   string
	Port int
	URL  string // http://127.0.0.1:<port>, also in the nocobot.url label
}

var nodeSeq atomic.Int64

// RunNode runs a stand-in node with host networking (the test engine has no
// bridge), listening on its own loopback port, and removes it — and any
// container that still carries its nocobot.test label, such as a copy
// re-created by the code under test — when the test ends.
func RunNode(t testing.TB, host string, spec NodeSpec) RunningNode {
	t.Helper()
	n := nodeSeq.Add(1)
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("node-%d-%d", n, os.Getpid())
	}
	if spec.Port == 0 {
		spec.Port = FreePort(t)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", spec.Port)
	tag := fmt.Sprintf("%d-%d", os.Getpid(), n)
	verb := "run"
	args := []string{"-d"}
	if spec.Created {
		verb, args = "create", nil
	}
	args = append([]string{verb}, args...)
	args = append(args, "--name", spec.Name, "--network", "host",
		"--label", "nocobot.url="+url, "--label", "nocobot.test="+tag)
	keys := make([]string, 0, len(spec.Labels))
	for k := range spec.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+spec.Labels[k])
	}
	for _, e := range spec.Env {
		args = append(args, "-e", e)
	}
	for _, m := range spec.Mounts {
		args = append(args, "-v", m)
	}
	args = append(args, spec.Args...)
	args = append(args, spec.Image)
	// The port as an argument, not a variable: the nodes' environments
	// stay alike, as a cluster's must (preflight compares them).
	args = append(args, "-listen", fmt.Sprintf("127.0.0.1:%d", spec.Port))
	args = append(args, spec.Cmd...)
	t.Cleanup(func() { RemoveLabelled(host, "nocobot.test="+tag) })
	id := Docker(t, host, args...)
	return RunningNode{Name: spec.Name, ID: id, Port: spec.Port, URL: url}
}

// RemoveLabelled force-removes every container carrying label (k=v),
// with its anonymous volumes; errors are ignored (it is for clean-ups).
func RemoveLabelled(host, label string) {
	ids, err := docker(host, nil, "ps", "-aq", "--filter", "label="+label)
	if err != nil || ids == "" {
		return
	}
	_, _ = docker(host, nil, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
}
