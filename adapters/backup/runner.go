package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// runner runs a small sh script with pg tools, either on this host or in
// the database container. Dynamic values reach the script only as
// positional arguments ($1…), never spliced into its text. The password,
// if any, is written as the first line of stdin and read by the script into
// PGPASSWORD: it is never on a command line (ps, docker inspect, error
// messages) and never in the process's initial environment.
type runner interface {
	run(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) error
	where() string
}

// localRunner runs the pg tools of this host (PgBin) against a URL.
type localRunner struct {
	pgBin string
}

func (l localRunner) where() string { return "this host" }

func (l localRunner) run(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "nocobot"}, args...)...)
	env := os.Environ()
	if l.pgBin != "" {
		env = append(env, "PATH="+l.pgBin+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	cmd.Env = env
	cmd.Stdin, cmd.Stdout = stdin, stdout
	if stdout == nil {
		cmd.Stdout = io.Discard
	}
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	// pg_dump and pg_restore are children of sh: kill the whole group, or
	// a cancelled dump would keep running and keep our pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// containerRunner runs the pg tools inside the database container, so the
// client always matches the server's major version.
type containerRunner struct {
	containers Containers
	container  string
}

func (c containerRunner) where() string { return "container " + c.container }

func (c containerRunner) run(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	return c.containers.Exec(ctx, c.container, append([]string{"sh", "-c", script, "nocobot"}, args...), stdin, stdout)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// limitedWriter fails a write past n bytes.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errors.New("output too large")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}
