package bolt_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/bolt"
	"github.com/nocobot/nocobot/store/storetest"
)

func open(t *testing.T) store.Store {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "nocobot.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSuite(t *testing.T) { storetest.Run(t, open) }

func TestSecondProcessRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	s, err := bolt.Open(path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description, so a second Open in this
	// process models a second process.
	_, err = bolt.Open(path, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open = %v, want a clear 'in use' error", err)
	}
}

func TestOwnersClearedOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nocobot.db")
	s, _ := bolt.Open(path, zerolog.Nop())
	ctx := context.Background()
	s.CreateRun(ctx, storetest.NewRun("r1", "prod", time.Now()))
	if _, err := s.ClaimRun(ctx, "r1", "dead-engine", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _ = bolt.Open(path, zerolog.Nop())
	defer s.Close()
	if _, err := s.ClaimRun(ctx, "r1", "new-engine", time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("a new process must be able to take over a dead process's run at once: %v", err)
	}
}

// TestKill9LosesNothing runs a child process that records transitions and
// prints each one after UpdateRun returns; the parent kills it with
// SIGKILL mid-stream and checks that every acknowledged transition is in
// the file.
func TestKill9LosesNothing(t *testing.T) {
	if path := os.Getenv("NOCOBOT_KILL9_CHILD"); path != "" {
		child(path)
		return
	}
	path := filepath.Join(t.TempDir(), "nocobot.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9LosesNothing$")
	cmd.Env = append(os.Environ(), "NOCOBOT_KILL9_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ack "))
		if err != nil {
			continue
		}
		last = n
		if n == 150 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	_ = cmd.Wait()
	if last < 150 {
		t.Fatalf("child acknowledged only %d transitions", last)
	}
	s, err := bolt.Open(path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.GetRun(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Current < last {
		t.Fatalf("after kill -9 the file holds transition %d, but %d was acknowledged", r.Current, last)
	}
}

func child(path string) {
	s, err := bolt.Open(path, zerolog.Nop())
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	r, _ := s.CreateRun(ctx, storetest.NewRun("r1", "prod", time.Now()))
	for i := 0; ; i++ {
		r.Current = i
		if err := s.UpdateRun(ctx, r); err != nil {
			fmt.Println("update:", err)
			os.Exit(1)
		}
		fmt.Printf("ack %d\n", i)
	}
}
