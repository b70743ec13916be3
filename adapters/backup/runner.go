package backup

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
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
	stderr, err := runShell(ctx, toolEnv(os.Environ(), l.pgBin), script, args, stdin, stdout)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if msg := errorLine(stderr); msg != "" {
		return &toolError{msg: err.Error() + ": " + msg, err: err}
	}
	return err
}

// runShell runs script with sh on this host, in env, and returns the tail
// of its stderr with its error (ctx's error when ctx ended it).
func runShell(ctx context.Context, env []string, script string, args []string, stdin io.Reader, stdout io.Writer) (string, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "nocobot"}, args...)...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout = stdin, stdout
	if stdout == nil {
		cmd.Stdout = io.Discard
	}
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	// The tools are children of sh: kill the whole group, or a cancelled
	// dump would keep running and keep our pipes open. If nocobot itself
	// is killed, the kernel kills the tool (sh execs it, which keeps the
	// signal): an orphaned dump would hold sessions on the database and
	// fill the disk beside the retry of the resumed run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		return stderr.String(), ctx.Err()
	}
	return stderr.String(), err
}

// toolEnvKeep are the variables of nocobot's environment that the tools
// may see: where programs are, the locale, and libpq's TLS and service
// settings. Everything else (Slack tokens, API keys, other passwords)
// stays out; the database password reaches only the tool, through stdin.
var toolEnvKeep = []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_COLLATE", "LC_NUMERIC", "LC_TIME", "LC_MONETARY",
	"PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGSSLCRLDIR", "PGSSLNEGOTIATION", "PGREQUIRESSL", "PGCONNECT_TIMEOUT", "PGAPPNAME",
	"PGSERVICEFILE", "PGSYSCONFDIR", "PGTARGETSESSIONATTRS", "PGGSSENCMODE", "PGKRBSRVNAME"}

// toolEnv is the environment of a local tool: the kept variables of
// parent, with pgBin first on PATH.
func toolEnv(parent []string, pgBin string) []string {
	var env []string
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range parent {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH":
			path = v
		case slices.Contains(toolEnvKeep, k):
			env = append(env, kv)
		}
	}
	if pgBin != "" {
		path = pgBin + string(os.PathListSeparator) + path
	}
	return append(env, "PATH="+path)
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
	err := c.containers.Exec(ctx, c.container, append([]string{"sh", "-c", script, "nocobot"}, args...), stdin, stdout)
	if err == nil || ctx.Err() != nil {
		return err
	}
	// The Docker adapter's message quotes the whole command (the script,
	// SQL) and the tool's stderr: keep the exit code and the error line.
	msg := "failed"
	if m := exitCode.FindString(err.Error()); m != "" {
		msg = m
	}
	if line := errorLine(err.Error()); line != "" {
		msg += ": " + line
	}
	return &toolError{msg: msg, err: err}
}

var exitCode = regexp.MustCompile(`exit (code|status) \d+`)

// toolError is a tool's failure cut to what may be shown: its message
// keeps the error line, while the full text (which can quote table rows)
// stays only in the wrapped error, for errors.Is.
type toolError struct {
	msg string
	err error
}

func (e *toolError) Error() string { return e.msg }
func (e *toolError) Unwrap() error { return e.err }

// errorLine picks the first line of a tool's error output that states the
// error (psql's and the server's "ERROR:", "FATAL:", the tools' "error:"),
// cut to a length fit for a chat message. DETAIL, CONTEXT, LINE and
// "Command was" lines can quote rows and are never taken.
// Without such a line, the last line that quotes nothing is taken (a
// shell's "not found", a connection failure).
func errorLine(out string) string {
	clip := func(l string) string {
		l = strings.TrimSpace(l)
		if r := []rune(l); len(r) > 240 {
			l = string(r[:240]) + "…"
		}
		return l
	}
	last := ""
	for _, l := range strings.Split(out, "\n") {
		if i := errorWord.FindStringIndex(l); i != nil {
			return clip(l[i[0]:])
		}
		if t := strings.TrimSpace(l); t != "" && !quoting.MatchString(t) {
			last = t
		}
	}
	return clip(last)
}

var (
	errorWord = regexp.MustCompile(`(pg_dump|pg_restore|psql|pg_dumpall): error:|\b(ERROR|FATAL|PANIC):`)
	quoting   = regexp.MustCompile(`\b(DETAIL|CONTEXT|HINT|QUERY|LINE \d+|STATEMENT):|Command was:|^\^|^\s`)
)

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
