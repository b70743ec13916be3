package buildinfo

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/nocobot/nocobot", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.modified", Value: "true"},
			{Key: "vcs.time", Value: "2026-11-30T12:00:00Z"},
		},
	}
	installed := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/nocobot/nocobot", Version: "v1.3.0"}}
	read := func(bi *debug.BuildInfo) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return bi, bi != nil }
	}
	tests := []struct {
		name                 string
		ldVersion, ldCommit  string
		bi                   *debug.BuildInfo
		want                 string
		wantVersion, wantSHA string
	}{
		{"link-time values win", "v1.2.0", "feedfacecafe", stamped, "nocobot v1.2.0 (commit feedfacecafe, go1.26.8)", "v1.2.0", "feedfacecafe"},
		{"go build in a clone", "", "", stamped, "nocobot dev (commit 0123456789abcdef0123456789abcdef01234567 (modified), 2026-11-30T12:00:00Z, go1.26.8)", "dev", "0123456789abcdef0123456789abcdef01234567"},
		{"go install from the proxy", "", "", installed, "nocobot v1.3.0 (commit unknown, go1.26.8)", "v1.3.0", ""},
		{"nothing recorded", "", "", nil, "nocobot dev (commit unknown)", "dev", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.ldVersion, tt.ldCommit, "", read(tt.bi))
			if got.String() != tt.want || got.Version != tt.wantVersion || got.Commit != tt.wantSHA {
				t.Fatalf("got %+v = %q\nwant %q", got, got.String(), tt.want)
			}
		})
	}
}

// clone makes a git repository holding this package and
// testdata/printversion as a module of their own, committed, and returns
// its folder and commit. (A repository of its own, because go build does
// not stamp builds made in a git worktree.)
func clone(t *testing.T) (dir, head string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	dir = t.TempDir()
	files := map[string]string{"buildinfo.go": "internal/buildinfo/buildinfo.go", "testdata/printversion/main.go": "internal/buildinfo/testdata/printversion/main.go"}
	for from, to := range files {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, to), string(b))
	}
	write(t, filepath.Join(dir, "go.mod"), "module github.com/nocobot/nocobot\n\ngo 1.26\n")
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "buildinfo")
	return dir, git("rev-parse", "HEAD")
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// build compiles printversion in dir with go build and flags, and returns
// what it prints.
func build(t *testing.T, dir string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "printversion")
	args := append([]string{"build", "-o", bin}, flags...)
	cmd := exec.Command("go", append(args, "./internal/buildinfo/testdata/printversion")...)
	cmd.Dir = dir
	// The machine's go env may turn VCS stamping off; the flags say here.
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=auto", "CGO_ENABLED=0", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestGoBuildRecordsTheCommit(t *testing.T) {
	dir, head := clone(t)
	got := build(t, dir)
	if want := "commit " + head + ","; !strings.Contains(got, want) {
		t.Fatalf("go build in a clone printed %q, want it to contain %q", got, want)
	}
	write(t, filepath.Join(dir, "internal/buildinfo/extra.go"), "package buildinfo\n")
	if got := build(t, dir); !strings.Contains(got, "commit "+head+" (modified)") {
		t.Fatalf("go build in a changed clone printed %q, want the commit marked modified", got)
	}
}

func TestLinkerFlagsWin(t *testing.T) {
	dir, _ := clone(t)
	const pkg = "github.com/nocobot/nocobot/internal/buildinfo"
	got := build(t, dir, "-ldflags", "-X "+pkg+".version=v9.8.7 -X "+pkg+".commit=abc123")
	if !strings.HasPrefix(got, "nocobot v9.8.7 (commit abc123,") {
		t.Fatalf("printed %q", got)
	}
}
