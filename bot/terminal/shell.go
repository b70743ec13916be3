package terminal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/procedures"
)

// questionsEvery is how often the shell looks for new questions.
const questionsEvery = 2 * time.Second

// Shell is the interactive prompt: it takes the words of the command
// language as typed in Slack (with or without /nocobase or nocobot),
// plus attach and decide, and shows the questions runs ask as choices.
// It ends with exit, quit or the end of input.
func (f *Front) Shell(ctx context.Context) error {
	fmt.Fprintln(f.out, "nocobot shell — the words of /nocobase (help lists them), attach <run>, decide <run> <choice>; exit or Ctrl-D ends it.")
	shown := map[string]bool{}
	f.showQuestions(ctx, shown)
	// Questions that open while the prompt waits show up by themselves.
	tick := time.NewTicker(questionsEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			f.showQuestions(ctx, shown)
		case l, ok := <-f.lines:
			if !ok || l.EOF {
				fmt.Fprintln(f.out, "bye")
				return nil
			}
			if !f.shellLine(ctx, l.Text) {
				return nil
			}
			f.showQuestions(ctx, shown)
		}
	}
}

// shellLine runs one line; false ends the shell.
func (f *Front) shellLine(ctx context.Context, line string) bool {
	words, err := procedures.SplitWords(line)
	if err != nil {
		fmt.Fprintf(f.out, "%s\n", Clean(err.Error()))
		return true
	}
	if len(words) > 0 && (words[0] == "/nocobase" || words[0] == "nocobot" || words[0] == "/"+strings.TrimPrefix(f.who.Prefix, "/")) {
		words = words[1:]
	}
	if len(words) == 0 {
		return true
	}
	who := f.who
	switch strings.ToLower(words[0]) {
	case "exit", "quit":
		return false
	case "attach":
		if len(words) != 2 {
			fmt.Fprintln(f.out, "Usage: attach <run>")
			return true
		}
		if _, err := f.Attach(ctx, words[1], who.Prefix+" attach "+words[1]); err != nil {
			fmt.Fprintln(f.out, Clean(err.Error()))
		}
		return true
	}
	r := f.disp.Command(ctx, who, strings.Join(quoteAll(words), " "))
	f.printReply(r)
	if r.Started {
		if _, err := f.Attach(ctx, r.RunID, who.Prefix+" attach "+r.RunID); err != nil {
			fmt.Fprintln(f.out, Clean(err.Error()))
		}
	}
	return true
}

// quoteAll rejoins words so the dispatcher splits them the same way.
func quoteAll(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\"'") {
			w = `"` + strings.ReplaceAll(w, `"`, `\"`) + `"`
		}
		out[i] = w
	}
	return out
}

// printReply prints a reply (or, when it only announces, the announcement).
func (f *Front) printReply(r bot.Reply) {
	switch {
	case !r.Quiet():
		fmt.Fprintln(f.out, Clean(r.Plain()))
	case !r.Announce.Empty():
		fmt.Fprintln(f.out, Clean(r.Announce.Plain()))
	}
}

// showQuestions shows, once each, the questions unfinished runs ask, as
// the commands that answer them.
func (f *Front) showQuestions(ctx context.Context, shown map[string]bool) {
	runs, err := f.eng.UnfinishedRuns(ctx)
	if err != nil {
		return
	}
	for _, r := range runs {
		cp := r.Checkpoint
		if cp == nil || shown[r.ID+"|"+cp.ID] {
			continue
		}
		shown[r.ID+"|"+cp.ID] = true
		fmt.Fprintf(f.out, "? Run %s (%s) asks: %s\n", r.ID, Clean(procedures.Title(r)), Clean(cp.Question))
		for _, o := range cp.Options {
			fmt.Fprintf(f.out, "    decide %s %s\n", r.ID, o)
		}
		fmt.Fprintf(f.out, "    (or attach %s to follow it here)\n", r.ID)
	}
}
