package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/nocobot/nocobot/internal/kubetest"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// The tests in this file run the built nocobot binary as separate
// processes on one SQLite store, as operators at several terminals and
// a bot would.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// binary builds nocobot once per test binary.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nocobot-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "nocobot")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// proc is a nocobot process.
type proc struct {
	cmd      *exec.Cmd
	out, err *syncBuf
	stdin    io.WriteCloser
	done     chan struct{}
	code     int
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary(t), args...), out: &syncBuf{}, err: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exit waits for the process to end and returns its exit code.
func (p *proc) exit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(within):
		t.Fatalf("%v did not end within %s\nstdout:\n%s\nstderr:\n%s", p.cmd.Args[1:], within, p.out, p.err)
	}
	return -1
}

// nocobotx runs a command to its end.
func nocobotx(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	p := start(t, env, args...)
	p.stdin.Close()
	code := p.exit(t, 60*time.Second)
	return code, p.out.String(), p.err.String()
}

func waitOut(t *testing.T, out interface{ String() string }, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := out.String()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q within %s:\n%s", want, within, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var runIDRe = regexp.MustCompile(`Run (r\d{4}-[a-z0-9]+):`)

func runID(t *testing.T, p *proc) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.out.String(), "Run r") {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		if exited || time.Now().After(deadline) {
			t.Fatalf("%v showed no run (exited: %v, code %d)\nstdout:\n%s\nstderr:\n%s", p.cmd.Args[1:], exited, p.code, p.out, p.err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := runIDRe.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no run id in:\n%s", p.out)
	}
	return m[1]
}

// processConfig writes a configuration of the named clusters, each on an
// unreachable Docker engine: a run's preflight fails and it waits for
// Retry or Abort, which is all these tests need of the engine.
func processConfig(t *testing.T, extra string, clusters ...string) string {
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "store: {path: %s}\n%s\nclusters:\n", filepath.Join(dir, "state", "n.db"), extra)
	for _, c := range clusters {
		fmt.Fprintf(&b, `  - name: %s
    slack: {channel: C%s}
    docker: {host: "unix:///nonexistent/docker.sock"}
    nodes: {labels: {com.docker.compose.service: app}}
    load_balancer: {type: none}
    backup: {destination: %s, database: {container: db, name: nocobase}}
`, c, strings.ToUpper(c), filepath.Join(dir, "backups-"+c))
	}
	p := filepath.Join(dir, "nocobot.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const trusted = "access: {trust_terminal: true}"

// Two runs on two clusters from two terminals; a third process decides
// the first; the second is answered at its own prompt. No ANSI colours
// reach output that is not a terminal.
func TestProcessesShareAStore(t *testing.T) {
	conf := processConfig(t, trusted, "prod", "staging")
	p1 := start(t, nil, "run", "maintain", "prod", "--config", conf)
	p2 := start(t, nil, "--config", conf, "run", "maintain", "staging")
	id1, id2 := runID(t, p1), runID(t, p2)
	waitOut(t, p1.out, "Choices: 1) retry  2) abort", 30*time.Second)
	waitOut(t, p2.out, "Choices: 1) retry  2) abort", 30*time.Second)

	code, out, errs := nocobotx(t, nil, "status", "prod", "--config", conf)
	if code != 0 || !strings.Contains(out, "Running: "+id1) {
		t.Fatalf("status while both wait: exit %d\n%s%s", code, out, errs)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"decide", id1, "continue"}, 1, "Continue is not an option here: choose Retry or Abort."},
		{[]string{"decide", id1, "frob"}, 2, `"frob": expected continue, rollback, abort, retry or done`},
		{[]string{"decide", "r0000-none", "abort"}, 6, "There is no run r0000-none."},
		{[]string{"attach", "r0000-none"}, 6, "There is no run r0000-none."},
		{[]string{"run", "maintain", "prod"}, 1, "prod is busy: run " + id1},
	} {
		code, out, errs := nocobotx(t, nil, append(c.args, "--config", conf)...)
		first, usage, _ := strings.Cut(strings.TrimSpace(errs), "\n")
		if code != c.code || !strings.Contains(first, c.want) || usage != "" && (c.code != 2 || !strings.HasPrefix(usage, "Usage: ") || strings.Contains(usage, "\n")) {
			t.Fatalf("%v: exit %d, out %q, err %q; want exit %d and one line with %q (a usage error's usage on the next)", c.args, code, out, errs, c.code, c.want)
		}
	}
	decided := time.Now()
	code, out, errs = nocobotx(t, nil, "decide", id1, "abort", "--config", conf)
	if code != 0 || !strings.Contains(out, "Recorded: Abort on run "+id1) {
		t.Fatalf("decide from a third process: exit %d\n%s%s", code, out, errs)
	}
	waitOut(t, p1.out, "aborted", 10*time.Second)
	t.Logf("a decision from another process reached the driving one and ended the run %s after the decide process exited", time.Since(decided).Round(time.Millisecond))
	if c := p1.exit(t, 10*time.Second); c != 4 {
		t.Fatalf("run 1 exit %d\n%s%s", c, p1.out, p1.err)
	}
	if !strings.Contains(p1.out.String(), "Abort, chosen by terminal:") {
		t.Fatalf("run 1 does not say who decided:\n%s", p1.out)
	}
	io.WriteString(p2.stdin, "abort\n")
	if c := p2.exit(t, 20*time.Second); c != 4 {
		t.Fatalf("run 2 exit %d\n%s%s", c, p2.out, p2.err)
	}
	for _, p := range []*proc{p1, p2} {
		if strings.Contains(p.out.String()+p.err.String(), "\x1b") {
			t.Fatalf("ANSI escapes in output that is not a terminal:\n%q", p.out.String()+p.err.String())
		}
	}
	_, out, _ = nocobotx(t, nil, "audit", "--run", id1, "--config", conf)
	for _, want := range []string{"nocobot run maintain prod", "nocobot decide " + id1 + " abort", "ok: abort", "terminal",
		"nocobot decide " + id1 + " continue", "refused: Continue is not an option here", "refused: prod is busy: run " + id1} {
		if !strings.Contains(out, want) {
			t.Fatalf("audit --run %s lacks %q:\n%s", id1, want, out)
		}
	}
	if strings.Contains(out, id2) {
		t.Fatalf("audit --run %s shows run %s:\n%s", id1, id2, out)
	}
	_, out, _ = nocobotx(t, nil, "audit", "--run", id2, "--json", "--config", conf)
	if !strings.Contains(out, `"action":"answer abort run `+id2) || !strings.Contains(out, `"run_id":"`+id2+`"`) {
		t.Fatalf("audit --json lacks the answer at the prompt:\n%s", out)
	}
}

// A run whose process was killed is taken over by attach once the dead
// process's lease lapses, and answered there.
func TestAttachTakesOverAKilledRun(t *testing.T) {
	conf := processConfig(t, trusted, "prod")
	p1 := start(t, nil, "run", "maintain", "--config", conf)
	id := runID(t, p1)
	waitOut(t, p1.out, "Choices:", 30*time.Second)
	p1.cmd.Process.Signal(syscall.SIGKILL)
	p1.exit(t, 10*time.Second)

	p2 := start(t, nil, "attach", id, "--config", conf)
	waitOut(t, p2.out, "Attached to run "+id+", which another nocobot process drives", 20*time.Second)
	waitOut(t, p2.out, "The process that drove run "+id+" stopped; this one drives it now.", 40*time.Second)
	io.WriteString(p2.stdin, "abort\n")
	if c := p2.exit(t, 20*time.Second); c != 4 {
		t.Fatalf("attach exit %d\n%s%s", c, p2.out, p2.err)
	}
	if !strings.Contains(p2.out.String(), "aborted") {
		t.Fatalf("attach output:\n%s", p2.out)
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// ptyProc runs nocobot on a pseudo-terminal, as at an operator's screen.
type ptyProc struct {
	*proc
	master *os.File
}

func startPTY(t *testing.T, args ...string) *ptyProc {
	t.Helper()
	return startPTYEnv(t, nil, args...)
}

// startPTYEnv is startPTY with the child's whole environment given (nil:
// this process's).
func startPTYEnv(t *testing.T, env []string, args ...string) *ptyProc {
	t.Helper()
	m, s := openPTY(t)
	p := &proc{cmd: exec.Command(binary(t), args...), out: &syncBuf{}, err: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = s, s, s
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	copied := make(chan struct{})
	go func() { io.Copy(p.out, m); close(copied) }()
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		// The last lines may still be in the terminal: read them first.
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		m.Close()
	})
	return &ptyProc{proc: p, master: m}
}

func (p *ptyProc) typeIn(s string) { p.master.Write([]byte(s)) }

// Ctrl-C and the end of input at a terminal ask; leave says the run id
// and the command that continues it, attach continues it, abort ends it
// (saying nothing was changed: the run stopped at its preflight).
func TestInterruptsAtATerminal(t *testing.T) {
	conf := processConfig(t, trusted, "prod")
	p := startPTY(t, "run", "maintain", "--config", conf)
	id := runID(t, p.proc)
	waitOut(t, p.out, "Choices:", 30*time.Second)
	p.typeIn("\x03")
	waitOut(t, p.out, "Interrupted. Run "+id+" is waiting for a decision", 10*time.Second)
	waitOut(t, p.out, "Choose a, l or k", 10*time.Second)
	p.typeIn("l\n")
	if c := p.exit(t, 20*time.Second); c != 5 {
		t.Fatalf("exit %d\n%s", c, p.out)
	}
	for _, want := range []string{"Left run " + id + " as it is", "Continue it with: nocobot attach " + id, "nocobot run: run " + id + " is left unfinished: continue it with nocobot attach " + id} {
		if !strings.Contains(p.out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, p.out)
		}
	}

	a := startPTY(t, "attach", id, "--config", conf)
	waitOut(t, a.out, "Attached to run "+id+": no other process drives it, so this one does now.", 20*time.Second)
	waitOut(t, a.out, "Choices:", 20*time.Second)
	a.typeIn("\x04")
	waitOut(t, a.out, "The input ended. Run "+id, 10*time.Second)
	a.typeIn("a\n")
	if c := a.exit(t, 20*time.Second); c != 4 {
		t.Fatalf("attach exit %d\n%s", c, a.out)
	}
	// The run stopped at its preflight: nothing to bring back.
	for _, want := range []string{"Aborting run " + id, "aborted", "Nothing was changed: the run stopped before its first change."} {
		if !strings.Contains(a.out.String(), want) {
			t.Fatalf("attach output lacks %q:\n%s", want, a.out)
		}
	}

	// The shell edits lines at a terminal: a typo fixed with backspace runs.
	sh := startPTY(t, "shell", "--config", conf)
	waitOut(t, sh.out, "nocobot> ", 20*time.Second)
	sh.typeIn("/nocobase histroy\x7f\x7f\x7f\x7ftory\r")
	waitOut(t, sh.out, id+" ", 10*time.Second)
	sh.typeIn("\x04")
	if c := sh.exit(t, 10*time.Second); c != 0 {
		t.Fatalf("shell exit %d\n%s", c, sh.out)
	}
}

// serve (HTTP mode, nothing calls it) and the terminal commands share
// the store: reads, a run, a decision, the shell, traffic, schedules.
func TestServeAndTerminalTogether(t *testing.T) {
	addr := testenv.FreeAddr(t)
	extra := trusted + fmt.Sprintf("\nslack: {mode: http, bot_token_env: NOCOBOT_PTEST_BOT, signing_secret_env: NOCOBOT_PTEST_SIGN, listen: %q}", addr)
	conf := processConfig(t, extra, "prod")
	env := []string{"NOCOBOT_PTEST_BOT=xoxb-process-test", "NOCOBOT_PTEST_SIGN=process-test-secret"}
	srv := start(t, env, "serve", "--config", conf)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never listened:\n%s", srv.err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	r := start(t, nil, "run", "maintain", "--config", conf)
	id := runID(t, r)
	waitOut(t, r.out, "Choices:", 30*time.Second)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "Running: " + id},
		{[]string{"history"}, id},
		{[]string{"traffic", "on"}, "Asked the load balancer of prod to switch traffic on, but it reports unknown"},
		{[]string{"schedule", "add", "0 2 * * 6", "maintain"}, "scheduled window"},
		{[]string{"schedule", "list"}, "0 2 * * 6"},
	} {
		code, out, errs := nocobotx(t, nil, append(c.args, "--config", conf)...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Fatalf("%v while serve runs: exit %d\n%s%s", c.args, code, out, errs)
		}
	}
	_, out, _ := nocobotx(t, nil, "schedule", "list", "--config", conf)
	m := regexp.MustCompile(`(?m)^\s*- (\S+): 0 2 \* \* 6`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no window in schedule list:\n%s", out)
	}
	if code, out, errs := nocobotx(t, nil, "schedule", "skip", m[1], "--config", conf); code != 0 || !strings.Contains(out, "skipped the start of window "+m[1]) {
		t.Fatalf("schedule skip: exit %d\n%s%s", code, out, errs)
	}
	if _, out, _ := nocobotx(t, nil, "schedule", "list", "--config", conf); !strings.Contains(out, " skipped)") {
		t.Fatalf("the skip does not show:\n%s", out)
	}
	sh := start(t, nil, "shell", "--config", conf)
	io.WriteString(sh.stdin, "/nocobase status\nfrobnicate\ndecide "+id+" abort\nexit\n")
	if c := sh.exit(t, 30*time.Second); c != 0 {
		t.Fatalf("shell exit %d\n%s%s", c, sh.out, sh.err)
	}
	for _, want := range []string{"? Run " + id + " (maintenance of prod (manual window)) asks:", "decide " + id + " abort", "Status of prod", `unknown command "frobnicate"`, "Recorded: Abort on run " + id} {
		if !strings.Contains(sh.out.String(), want) {
			t.Fatalf("shell output lacks %q:\n%s", want, sh.out)
		}
	}
	if c := r.exit(t, 20*time.Second); c != 4 {
		t.Fatalf("run exit %d\n%s%s", c, r.out, r.err)
	}
	select {
	case <-srv.done:
		t.Fatalf("serve stopped:\n%s", srv.err)
	default:
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if c := srv.exit(t, 30*time.Second); c != 0 {
		t.Fatalf("serve exit %d\n%s", c, srv.err)
	}
}

// Without a mapping or trust the terminal is allowed nothing, and the
// refusal names the settings; a mapped OS user acts as their Slack id.
func TestTerminalUserAccess(t *testing.T) {
	conf := processConfig(t, "", "prod")
	code, _, errs := nocobotx(t, nil, "traffic", "off", "--config", conf)
	if code != 1 || !strings.Contains(errs, "You are not allowed to switch traffic on prod.") ||
		!strings.Contains(errs, "access.terminal_users") || !strings.Contains(errs, "access.trust_terminal: true") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
		t.Fatalf("untrusted terminal: exit %d, %q", code, errs)
	}
	_, out, _ := nocobotx(t, nil, "audit", "--config", conf)
	if !strings.Contains(out, "nocobot traffic off") || !strings.Contains(out, "refused: You are not allowed to switch traffic on prod.") {
		t.Fatalf("refusal not audited:\n%s", out)
	}
}

// Text typed into Slack (ESC, OSC, BEL, NUL) never reaches the operator's
// terminal raw from the audit log, and long text is cut (--json keeps it).
func TestAuditEscapesAndCuts(t *testing.T) {
	conf := processConfig(t, trusted, "prod")
	nocobotx(t, nil, "history", "--config", conf) // creates the store
	st, err := sqlite.Open(context.Background(), filepath.Join(filepath.Dir(conf), "state", "n.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	evil := "/nocobase status \x1b[2J\x1b]0;pwned\x07\x00" + strings.Repeat("x", 3000)
	if err := st.AppendAudit(context.Background(), store.AuditEntry{At: time.Now(), User: "U1\x1b[31m", Via: "slack", Action: evil, Outcome: "refused: \x1b[5mno"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	_, out, _ := nocobotx(t, nil, "audit", "--config", conf)
	if strings.ContainsAny(out, "\x1b\x07\x00") {
		t.Fatalf("raw control characters in audit output: %q", out)
	}
	if !strings.Contains(out, `\x1b]0;pwned\x07\x00`) || !strings.Contains(out, "more characters)") || len(out) > 2000 {
		t.Fatalf("audit output not escaped and cut: %q", out)
	}
	_, out, _ = nocobotx(t, nil, "audit", "--json", "--config", conf)
	if strings.ContainsAny(out, "\x1b\x07\x00") || !strings.Contains(out, `\u001b]0;pwned\u0007\u0000`) || !strings.Contains(out, strings.Repeat("x", 3000)) {
		t.Fatalf("audit --json: %q", out)
	}
}

// Without a terminal the end of input follows --on-interrupt once the
// run needs an answer: abort ends it (saying that nothing was changed, as
// the run stopped at its preflight);
// leave (the default) names the run and the command that continues it.
func TestEndOfInputFollowsTheFlag(t *testing.T) {
	conf := processConfig(t, trusted, "prod")
	code, out, errs := nocobotx(t, nil, "run", "maintain", "--on-interrupt", "abort", "--config", conf)
	if code != 4 || !strings.Contains(out, "The input ended: run r") || !strings.Contains(out, "aborted") ||
		!strings.Contains(out, "Nothing was changed") || strings.Contains(out, "To bring traffic back") {
		t.Fatalf("abort: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = nocobotx(t, nil, "run", "maintain", "--config", conf)
	id := runIDRe.FindStringSubmatch(out)
	if code != 5 || id == nil || !strings.Contains(out, "Continue it with: nocobot attach "+id[1]) ||
		!strings.Contains(errs, "run "+id[1]+" is left unfinished: continue it with nocobot attach "+id[1]) {
		t.Fatalf("leave: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := nocobotx(t, nil, "run", "maintain", "--on-interrupt", "later", "--config", conf); code != 2 || !strings.Contains(errs, `--on-interrupt "later": expected abort or leave`) {
		t.Fatalf("bad flag: exit %d %q", code, errs)
	}
}
