package lb

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// readOnlyDir mounts an empty read-only file system for the test, as a
// flag folder mounted read-only by mistake would be.
func readOnlyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testenv.TempDir(t), "ro")
	if out, err := exec.Command("mkdir", dir).CombinedOutput(); err != nil {
		t.Fatalf("mkdir: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a read-only file system here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// A flag folder that cannot be written: the switch to maintenance fails
// clearly, and the switch back finds the flag already off instead of
// failing on a file that is not there (EROFS is not "still on").
func TestNginxReadOnlyFlagFolder(t *testing.T) {
	flag := filepath.Join(readOnlyDir(t), "maintenance.on")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts NginxOptions
		c    Containers
	}{
		{"host file", NginxOptions{FlagPath: flag}, nil},
		{"exec", NginxOptions{FlagPath: flag, Container: "lb"}, &localContainers{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb, err := NewNginx(tc.opts, tc.c, zerolog.New(zerolog.NewTestWriter(t)))
			if err != nil {
				t.Fatal(err)
			}
			err = lb.SetMode(ctx, ports.LBMaintenance)
			if err == nil || !strings.Contains(err.Error(), "switch nginx to maintenance") || !strings.Contains(err.Error(), "Read-only file system") && !strings.Contains(err.Error(), "read-only file system") {
				t.Fatalf("switch to maintenance on a read-only folder: %v", err)
			}
			if err := lb.SetMode(ctx, ports.LBNormal); err != nil {
				t.Fatalf("switch to normal with no flag: %v", err)
			}
			if m, err := lb.Mode(ctx); err != nil || m != ports.LBNormal {
				t.Fatalf("mode = %s, %v", m, err)
			}
		})
	}
}
