package terminal_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// A run numbers its steps as plan does: the procedure's 1..n, its roll
// back's R1..Rm (never 11/17 after announcing 10 steps). A short answer
// ("ro") that fits one choice is taken; one that fits two ("r") is
// refused with the choices it could be. The summary table lists every
// step with its mark and explains the marks.
func TestStepNumbersAgreeWithThePlan(t *testing.T) {
	w := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	s := world(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, err := bot.ParseWords("nocobot", upgrade())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.eng.Plan(ctx, cmd.Request("plan", bot.ViaTerminal))
	if err != nil {
		t.Fatal(err)
	}
	forward := len(regexp.MustCompile(`(?m)^ *\d+\. `).FindAllString(plan, -1))
	back := len(regexp.MustCompile(`(?m)^R\d+\. `).FindAllString(plan, -1))
	if forward == 0 || back == 0 {
		t.Fatalf("plan without steps or roll back:\n%s", plan)
	}
	lines := make(chan terminal.Line, 2)
	out := &syncBuf{}
	f := s.front(lines, out, "terminal:erin", terminal.Options{})
	go func() {
		waitFor(t, out, "Choices:")
		lines <- terminal.Line{Text: "re"}
		waitFor(t, out, `"re" is not an option here`)
		lines <- terminal.Line{Text: "ro"}
	}()
	end, err := f.Start(ctx, upgrade(), "nocobot run upgrade 1.7.14")
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if end.Run.State != store.StateRolledBack {
		t.Fatalf("end %s:\n%s", end.Run.State, text)
	}
	for _, want := range []string{
		fmt.Sprintf("(%d steps)", forward), fmt.Sprintf("▶ %d/%d ", forward-4, forward),
		fmt.Sprintf("▶ R1/%d ", back), fmt.Sprintf("✔ R%d/%d done", back, back),
		"Roll back, chosen by terminal:erin",
		fmt.Sprintf("\n  R%d ", back), "Marks: ✔ done, – skipped. R1… are the roll back's steps.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(text, fmt.Sprintf("/%d ", forward+back)) || strings.Contains(text, "\x1b[") {
		t.Errorf("numbers counted across the roll back, or escape codes in output that is not a terminal")
	}
	if t.Failed() {
		t.Logf("plan:\n%s\nrun:\n%s", plan, text)
	}
}
