package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startScreen runs nocobot on a pseudo-terminal with env (TERM set, and
// NO_COLOR only when env sets it), as at an operator's screen.
func startScreen(t *testing.T, env []string, args ...string) *ptyProc {
	t.Helper()
	var all []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NO_COLOR=") && !strings.HasPrefix(kv, "TERM=") {
			all = append(all, kv)
		}
	}
	return startPTYEnv(t, append(all, env...), args...)
}

// after is what out shows after the first mark.
func after(out, mark string) string {
	_, rest, _ := strings.Cut(out, mark)
	return rest
}

// waitAfter waits until out shows want after mark.
func waitAfter(t *testing.T, out *syncBuf, mark, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(after(out.String(), mark), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q after %q within %s:\n%s", want, mark, within, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lacks(t *testing.T, out string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if strings.Contains(out, b) {
			t.Errorf("output shows %q", b)
		}
	}
}

func has(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

// progressJoined finds a progress line that packs several updates.
var progressJoined = regexp.MustCompile(`(?m)^ +… .*; `)

// The demo at a terminal: colours, one live line per running step redrawn
// in place (no progress lines scrolling), a summary table; "c" answers
// the checkpoint; Ctrl-C asks abort or keep (no leave: the demo's store
// goes with it), abort ends the run and the demo, whose summary says so,
// explains its marks and points to no attach of a deleted store.
func TestDemoScreenAtATerminal(t *testing.T) {
	t.Parallel()
	p := startScreen(t, []string{"TERM=xterm-256color"}, "demo")
	waitOut(t, p.out, "Choices:", 90*time.Second)
	p.typeIn("c\n")
	waitAfter(t, p.out, "$ nocobot run upgrade 2.3.0", "Stop all app nodes", 90*time.Second)
	p.typeIn("\x03")
	waitAfter(t, p.out, "$ nocobot run upgrade 2.3.0", "Choose a or k: ", 10*time.Second)
	p.typeIn("a\n")
	if c := p.exit(t, 60*time.Second); c != 1 {
		t.Errorf("exit %d, want 1 (the demo stopped short)", c)
	}
	out := p.out.String()
	has(t, out,
		"\x1b[32m✔\x1b[0m 1/11 Preflight", // a coloured step line, numbered as plan does
		"\x1b[1A\r\x1b[J",                 // the live area redrawn in place
		"Continue, chosen by terminal:demo",
		"  a) abort it safely", "  k) keep following",
		"Aborting run ",
		"\x1b[1mStep ", "Marks: ✔ done", // the run's summary table
		"✔ upgrade 2.2.16", "✖ upgrade 2.3.0                                typed   aborted (interrupted)",
		"– maintain backup                              window  not played",
		"Marks: ✔ succeeded   ↩ rolled back",
		"The store recorded 2 runs",
		"nocobot demo: stopped after 2 of 4 procedures: run ",
	)
	lacks(t, out, "nocobot attach", "l) leave", "busy", "      … ")
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// NO_COLOR at a terminal: plain lines, no escape code, progress one
// update a line; Ctrl-C still asks.
func TestDemoScreenNoColor(t *testing.T) {
	t.Parallel()
	p := startScreen(t, []string{"TERM=xterm-256color", "NO_COLOR=1"}, "demo")
	waitOut(t, p.out, "▶ 3/11 Stop all app nodes", 90*time.Second)
	p.typeIn("\x03")
	waitOut(t, p.out, "Choose a or k: ", 10*time.Second)
	p.typeIn("a\n")
	if c := p.exit(t, 60*time.Second); c != 1 {
		t.Errorf("exit %d, want 1", c)
	}
	out := p.out.String()
	has(t, out, "▶ 1/11 Preflight", "      … 1/11 pulling", "Aborting run ", "✖ upgrade 2.2.16", "– upgrade 2.3.0", "Marks: ")
	lacks(t, out, "\x1b", "nocobot attach")
	if progressJoined.MatchString(out) {
		t.Errorf("a progress line packs several updates")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// Piped, the demo's lines answer its questions in order, short answers
// included ("y", "ro", "c"): plain lines, no escape codes, progress one
// update a line, steps numbered as plan does (roll back R1..R8), and an
// honest summary: ↩ beside the roll back, ✔ beside what succeeded.
func TestDemoPiped(t *testing.T) {
	t.Parallel()
	p := start(t, nil, "demo")
	io.WriteString(p.stdin, "y\nro\nc\nc\n")
	p.stdin.Close()
	if c := p.exit(t, 4*time.Minute); c != 0 {
		t.Fatalf("exit %d\n%s\n%s", c, p.out, p.err)
	}
	out := p.out.String()
	has(t, out, "(11 steps)", "▶ 7/11 Start one node", "Roll back: 8 steps, R1 to R8", "▶ R1/8 Roll back:", "✔ R8/8 done",
		"  R8   Roll back: load balancer back", "Marks: ✔ done, – skipped. R1… are the roll back's steps.",
		"✔ upgrade 2.2.16", "↩ upgrade 2.3.0                                typed   rolled back",
		"✔ maintain plugin enable @nocobase/plugin-map", "✔ maintain backup", "Marks: ✔ succeeded")
	lacks(t, out, "\x1b", "12/", "/19", "asks nothing now", "busy")
	if progressJoined.MatchString(out) {
		t.Errorf("a progress line packs several updates")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// With no input left the demo aborts the run that asks and ends: no run
// is left open, none of the next fails on a busy cluster.
func TestDemoEndOfInput(t *testing.T) {
	t.Parallel()
	code, out, errOut := nocobotx(t, nil, "demo")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	has(t, out, "The input ended: run ", "aborts safely, as no one is here to answer",
		"✖ upgrade 2.2.16", "aborted (interrupted)", "– upgrade 2.3.0", "not played", "The store recorded 1 runs")
	has(t, errOut, "nocobot demo: stopped after 1 of 4 procedures")
	lacks(t, out, "busy", "Left run", "nocobot attach")
	if t.Failed() {
		t.Logf("output:\n%s\nstderr:\n%s", out, errOut)
	}
}
