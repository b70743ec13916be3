package terminal

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/store"
)

// mark is how a step's outcome shows in the summary table.
type mark struct{ sign, word, colour string }

var marks = map[store.StepStatus]mark{
	store.StepDone:    {"✔", "done", green},
	store.StepFailed:  {"✖", "failed", red},
	store.StepSkipped: {"–", "skipped", dim},
	store.StepPending: {"·", "not run", dim},
	store.StepWaiting: {"?", "waiting", yellow},
	store.StepRunning: {"▶", "running", cyan},
}

// legendOrder is the order the legend explains the marks in.
var legendOrder = []store.StepStatus{store.StepDone, store.StepFailed, store.StepSkipped, store.StepPending, store.StepWaiting, store.StepRunning}

// titleWidth is the most a step's title takes in the table.
const titleWidth = 52

// table prints the finished run's steps, one a row: number (as plan
// numbers them), title, outcome and time taken, then what the marks mean.
func (w *follower) table() {
	steps, scr := w.last.Steps, w.f.scr
	if len(steps) == 0 {
		return
	}
	tw := 0
	for _, s := range steps {
		tw = max(tw, min(utf8.RuneCountInString(CleanLine(s.Title)), titleWidth))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %s\n", scr.paint(bold, fmt.Sprintf("%-4s %s  %-9s %s", "Step", pad("", tw), "Result", "Took")))
	used := map[store.StepStatus]bool{}
	for i, s := range steps {
		m, ok := marks[s.Status]
		if !ok {
			m = mark{" ", string(s.Status), ""}
		}
		used[s.Status] = true
		num, _, _ := strings.Cut(bot.StepNumber(steps, i), "/")
		took := ""
		if !s.Started.IsZero() && !s.Ended.IsZero() {
			took = format.Duration(s.Ended.Sub(s.Started))
		}
		title := CleanLine(s.Title)
		if utf8.RuneCountInString(title) > tw {
			title = string([]rune(title)[:tw-1]) + "…"
		}
		result := pad(m.sign+" "+m.word, 9)
		if m.colour != "" {
			result = scr.paint(m.colour, result)
		}
		fmt.Fprintf(&b, "  %-4s %s  %s %s\n", num, pad(title, tw), result, took)
	}
	var legend []string
	for _, st := range legendOrder {
		if used[st] {
			legend = append(legend, marks[st].sign+" "+marks[st].word)
		}
	}
	note := "Marks: " + strings.Join(legend, ", ") + "."
	if steps[len(steps)-1].Rollback {
		note += " R1… are the roll back's steps."
	}
	fmt.Fprintf(&b, "  %s\n", scr.paint(dim, note))
	fmt.Fprint(w.f.out, b.String())
}

// pad fills s with spaces to n characters.
func pad(s string, n int) string {
	if k := utf8.RuneCountInString(s); k < n {
		return s + strings.Repeat(" ", n-k)
	}
	return s
}
