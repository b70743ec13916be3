package docker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// An engine that does not answer (a socket nobody listens on) is said
// once per message: what failed, why in one clause, what to do; no
// client text repeating the host, no internal shell script.
func TestUnreachableEngineSaidOnce(t *testing.T) {
	dir, err := os.MkdirTemp("", "nocobot-silent-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "docker.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{EngineOptions: EngineOptions{Host: "unix://" + sock, CallTimeout: 2 * time.Second},
		Labels: map[string]string{"a": "b"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	_, listErr := c.List(ctx)
	execErr := c.Engine().Exec(ctx, "lb", []string{"sh", "-c", `if [ -e "$1" ]; then echo on; fi`, "sh", "/flag"}, nil, nil)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{listErr, "list nodes: the Docker engine at unix://" + sock + " does not answer ("},
		{execErr, "lb: run a shell command: the Docker engine at unix://" + sock + " does not answer ("},
	} {
		if tc.err == nil {
			t.Fatal("no error from an engine that does not answer")
		}
		msg := tc.err.Error()
		if !strings.HasPrefix(msg, tc.want) || !strings.HasSuffix(msg, "): start it, or correct the cluster's docker.host") || strings.Count(msg, sock) != 1 || strings.Contains(msg, "sh -c") || strings.Contains(msg, "cluster:") {
			t.Errorf("message %q\nwant it to start with %q and name the socket once", msg, tc.want)
		}
	}
}
