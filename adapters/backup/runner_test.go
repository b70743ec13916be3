package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A tool nocobot started dies with nocobot: a kill -9 of the bot in the
// middle of a dump leaves no pg_dump behind holding sessions and filling
// the disk. The bot is this test binary run again as a child.
func TestToolDiesWithTheBot(t *testing.T) {
	if pidFile := os.Getenv("NOCOBOT_TOOL_CHILD"); pidFile != "" {
		// The "bot": a tool that writes its pid and waits.
		_, err := runShell(context.Background(), os.Environ(), `echo $$ > "$1"; exec sleep 120`, []string{pidFile}, nil, nil)
		t.Fatalf("the tool returned: %v", err)
	}
	pidFile := filepath.Join(t.TempDir(), "tool.pid")
	bot := exec.Command(os.Args[0], "-test.run=^TestToolDiesWithTheBot$")
	bot.Env = append(os.Environ(), "NOCOBOT_TOOL_CHILD="+pidFile)
	if err := bot.Start(); err != nil {
		t.Fatal(err)
	}
	defer bot.Process.Kill()
	var tool int
	for deadline := time.Now().Add(30 * time.Second); tool == 0; {
		b, _ := os.ReadFile(pidFile)
		tool, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if tool == 0 && time.Now().After(deadline) {
			t.Fatal("the tool did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(tool, 0); err != nil {
		t.Fatalf("the tool is not running: %v", err)
	}
	if err := bot.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	bot.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; {
		// Gone, or a zombie of a parent that is gone too.
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(tool) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(tool, syscall.SIGKILL)
			t.Fatalf("the tool (pid %d) outlived the bot that was killed", tool)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
