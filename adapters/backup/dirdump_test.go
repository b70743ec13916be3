package backup

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
)

// Where no inotify instance can be had (the per-user limit reached, as on
// a busy Docker host where every root container counts), the folder dump
// is read back once it ends: the backup is taken, says so, and restores.
// The test runs itself again in a user namespace that allows no inotify
// instance.
func TestFolderDumpWithoutInotify(t *testing.T) {
	if os.Getenv("NOCOBOT_TEST_NO_INOTIFY") != "1" {
		testenv.PostgresBin(t)
		cmd := exec.Command(os.Args[0], "-test.run=^TestFolderDumpWithoutInotify$", "-test.v")
		cmd.Env = append(os.Environ(), "NOCOBOT_TEST_NO_INOTIFY=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Skipf("no user namespace here: %v", err)
		}
		err := cmd.Wait()
		if err != nil || !strings.Contains(out.String(), "--- PASS: TestFolderDumpWithoutInotify") {
			t.Fatalf("in a user namespace without inotify: %v\n%s", err, out.String())
		}
		return
	}
	if err := os.WriteFile("/proc/sys/user/max_inotify_instances", []byte("0\n"), 0o644); err != nil {
		t.Fatalf("limit inotify in the test's user namespace: %v", err)
	}
	if fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC); err == nil {
		syscall.Close(fd)
		t.Fatal("inotify is still available")
	}
	f := newFixture(t, 4, 300)
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	progress := &lines{}
	info := create(t, m, progress)
	if !strings.Contains(progress.String(), "read back once the dump ends") {
		t.Errorf("progress does not say how the dump is read back: %s", progress)
	}
	ctx := t.Context()
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	before := dbSnapshot(t, f.dbURL)
	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database restored", before, dbSnapshot(t, f.dbURL))
}
