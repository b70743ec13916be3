package slack

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Button action ids. Values carry what the click is about, so a click
// needs no server-side memory: "run|checkpoint" or "window|unix-start".
const (
	actionPrefixCP     = "nocobot.cp." // + store.Action
	actionWindowSkip   = "nocobot.window.skip"
	actionWindowStart  = "nocobot.window.start"
	blockCheckpoint    = "nocobot.checkpoint"
	blockWindowActions = "nocobot.window"
)

func section(text string) slack.Block {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil)
}

func contextLine(text string) slack.Block {
	return slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, text, false, false))
}

func one(text string) (string, []slack.Block) { return text, []slack.Block{section(text)} }

// runStatus is the root's status line.
func runStatus(r store.Run) string {
	icon := map[store.RunState]string{
		store.StateRunning: ":arrows_counterclockwise:", store.StateWaiting: ":raising_hand:", store.StateFailed: ":x:",
		store.StateRollingBack: ":rewind:", store.StateSucceeded: ":white_check_mark:",
		store.StateRolledBack: ":leftwards_arrow_with_hook:", store.StateAborted: ":octagonal_sign:",
	}[r.State]
	return strings.TrimSpace(icon + " " + capitalize(bot.RunStatus(r)))
}

// versions is "from → to" for an upgrade.
func versions(r store.Run) string {
	if r.Procedure != procedures.ProcUpgrade {
		return ""
	}
	from := procedures.FactsOf(r).FromVersion()
	if from == "" {
		from = "?"
	}
	return fmt.Sprintf(" · %s → %s", from, procedures.UpgradeTarget(r))
}

func renderRoot(r store.Run) (string, []slack.Block) {
	title := capitalize(procedures.Title(r))
	text := fmt.Sprintf("*%s*\n%s on %s%s · requested by %s · run `%s`\n%s",
		title, capitalize(r.Procedure), r.Cluster, versions(r), mention(r.Requester), r.ID, runStatus(r))
	return one(text)
}

func renderStep(st store.Step, progressAt time.Time) (string, []slack.Block) {
	var text string
	took := st.Ended.Sub(st.Started)
	switch st.Status {
	case store.StepRunning:
		text = fmt.Sprintf(":hourglass_flowing_sand: *%s* — running", st.Title)
		if st.Progress != "" {
			elapsed := progressAt.Sub(st.Started)
			if progressAt.IsZero() || elapsed < 0 {
				elapsed = 0
			}
			text += fmt.Sprintf(": %s (%s)", st.Progress, format.Elapsed(elapsed))
		}
	case store.StepDone:
		text = fmt.Sprintf(":white_check_mark: *%s* — done in %s", st.Title, format.Duration(took))
		if st.Detail != "" {
			text += "\n" + st.Detail
		}
	case store.StepFailed:
		text = fmt.Sprintf(":x: *%s* — failed after %s: %s", st.Title, format.Duration(max(took, 0)), st.Detail)
	case store.StepSkipped:
		text = fmt.Sprintf(":fast_forward: *%s* — skipped: %s", st.Title, st.Detail)
	case store.StepWaiting:
		text = fmt.Sprintf(":raising_hand: *%s* — waiting for a decision", st.Title)
	default:
		text = fmt.Sprintf(":white_circle: *%s* — pending", st.Title)
	}
	return one(text)
}

func renderCheckpoint(r store.Run, cs *cpState) (string, []slack.Block) {
	cp := cs.cp
	var head string
	switch cp.Kind {
	case "verify":
		head = ":raising_hand: *Verify checkpoint*"
	case "manual":
		head = ":wrench: *Your maintenance window*"
	case "failure":
		head = ":warning: *A step failed: what now?*"
	case "interrupted":
		head = ":warning: *Interrupted: what now?*"
	default:
		head = ":raising_hand: *Decision needed*"
	}
	text := head + "\n" + cp.Question
	if cp.URL != "" {
		text += "\nCheck the node: " + cp.URL
	}
	blocks := []slack.Block{section(text)}
	switch {
	case cs.decision != nil:
		d := cs.decision
		line := fmt.Sprintf("%s chose *%s* at %s", mention(d.By), bot.ActionLabel(d.Action), d.At.UTC().Format("15:04:05 UTC, 2 Jan"))
		if d.By == "timeout" || d.Via == "engine" {
			line = fmt.Sprintf("No decision in time: *%s* at %s", bot.ActionLabel(d.Action), d.At.UTC().Format("15:04:05 UTC, 2 Jan"))
		}
		blocks = append(blocks, contextLine(line))
		text += "\n" + line
	case cs.closed != "":
		blocks = append(blocks, contextLine(cs.closed))
		text += "\n" + cs.closed
	default:
		var buttons []slack.BlockElement
		for _, a := range cp.Options {
			label := bot.ActionLabel(a)
			if a == store.ActionContinue && cp.Kind == "manual" {
				label = "Done, continue"
			}
			b := slack.NewButtonBlockElement(actionPrefixCP+string(a), r.ID+"|"+cp.ID,
				slack.NewTextBlockObject(slack.PlainTextType, label, false, false))
			switch a {
			case store.ActionContinue, store.ActionRetry:
				b = b.WithStyle(slack.StylePrimary)
			case store.ActionRollback, store.ActionAbort:
				b = b.WithStyle(slack.StyleDanger)
			}
			buttons = append(buttons, b)
		}
		blocks = append(blocks, slack.NewActionBlock(blockCheckpoint, buttons...))
		if !cp.Deadline.IsZero() {
			blocks = append(blocks, contextLine("Waiting until "+cp.Deadline.UTC().Format("15:04 UTC")+"."))
		}
	}
	return text, blocks
}

func renderSummary(r store.Run) (string, []slack.Block) {
	icon := ":white_check_mark:"
	switch r.State {
	case store.StateRolledBack:
		icon = ":leftwards_arrow_with_hook:"
	case store.StateAborted:
		icon = ":octagonal_sign:"
	}
	var facts []string
	facts = append(facts, "Outcome: *"+string(r.State)+"*", "Total: "+format.Duration(procedures.Duration(r, r.Ended)))
	if d, ok := procedures.Downtime(r); ok {
		facts = append(facts, "Downtime: "+format.Duration(d))
	} else if _, ok := procedures.FactsOf(r).DowntimeStart(); ok {
		facts = append(facts, "Downtime: still on the maintenance page")
	}
	if id := procedures.FactsOf(r).BackupID(); id != "" {
		facts = append(facts, "Backup: `"+id+"`")
	}
	text := fmt.Sprintf("%s %s\n%s", icon, procedures.Summary(r), strings.Join(facts, " · "))
	return one(text)
}

// parseCPValue reads "run|checkpoint".
func parseCPValue(v string) (runID, cpID string, ok bool) {
	runID, cpID, ok = strings.Cut(v, "|")
	return runID, cpID, ok && runID != "" && cpID != ""
}

// parseWindowValue reads "window|unix-start".
func parseWindowValue(v string) (id string, start time.Time, ok bool) {
	id, sec, ok := strings.Cut(v, "|")
	n, err := strconv.ParseInt(sec, 10, 64)
	if !ok || err != nil || id == "" {
		return "", time.Time{}, false
	}
	return id, time.Unix(n, 0), true
}
