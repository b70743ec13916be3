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

func renderRoot(r store.Run, rebuilt string) (string, []slack.Block) {
	title := capitalize(procedures.Title(r))
	text := fmt.Sprintf("*%s*\n%s on %s%s · requested by %s · run `%s`\n%s",
		title, capitalize(r.Procedure), r.Cluster, versions(r), mention(r.Requester), r.ID, runStatus(r))
	blocks := []slack.Block{section(text)}
	if rebuilt != "" {
		line := ":recycle: This thread replaces an earlier one: " + rebuilt
		blocks = append(blocks, contextLine(line))
		text += "\n" + line
	}
	return text, blocks
}

// slackDate shows a moment in each reader's own time zone; the fallback
// (clients that cannot, notifications) is the time in tz.
func slackDate(t time.Time, tz string) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), format.When(t, tz))
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

// checkpointQuestion is the question without a repeat of the failed
// step's error: the step's own message shows it (a long one cut, in
// full in a file), the question names it once at most.
func checkpointQuestion(cs *bot.Question) string {
	q := cs.Checkpoint.Question
	d := strings.TrimSpace(cs.Detail)
	if d == "" || !strings.Contains(q, d) {
		return q
	}
	if len([]rune(d)) > 200 {
		return strings.ReplaceAll(q, d, "the error shown above")
	}
	i := strings.Index(q, d) + len(d)
	return q[:i] + strings.ReplaceAll(q[i:], d, "the same error")
}

// confirmFor asks before an action that cannot be taken back.
func confirmFor(a store.Action) *slack.ConfirmationBlockObject {
	var title, text, yes string
	switch a {
	case store.ActionRollback:
		title, text, yes = "Roll back?", "The backup taken before the run is restored and the previous version started. Writes made since the backup are lost.", "Roll back"
	case store.ActionAbort:
		title, text, yes = "Abort the run?", "The run stops where it is; its summary says what state the cluster is in and which command brings traffic back.", "Abort"
	default:
		return nil
	}
	pt := func(s string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
	}
	return slack.NewConfirmationBlockObject(pt(title), pt(text), pt(yes), pt("Cancel")).WithStyle(slack.StyleDanger)
}

// renderCheckpoint shows a question; who says who may answer it.
func renderCheckpoint(r store.Run, cs *bot.Question, who string) (string, []slack.Block) {
	cp := cs.Checkpoint
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
	text := head + "\n" + checkpointQuestion(cs)
	if cp.URL != "" {
		text += "\nCheck the node: " + cp.URL
	}
	if cs.Open() && who != "" {
		text += "\n" + who
	}
	blocks := []slack.Block{section(text)}
	switch {
	case cs.Decision != nil:
		d := cs.Decision
		line := fmt.Sprintf("%s chose *%s* at %s", mention(d.By), bot.ActionLabel(d.Action), slackDate(d.At, "UTC"))
		if d.By == "timeout" || d.Via == "engine" {
			line = fmt.Sprintf("No decision in time: *%s* at %s", bot.ActionLabel(d.Action), slackDate(d.At, "UTC"))
		}
		blocks = append(blocks, contextLine(line))
		text += "\n" + line
	case cs.Closed != "":
		blocks = append(blocks, contextLine(cs.Closed))
		text += "\n" + cs.Closed
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
				b = b.WithStyle(slack.StyleDanger).WithConfirm(confirmFor(a))
			}
			buttons = append(buttons, b)
		}
		blocks = append(blocks, slack.NewActionBlock(blockCheckpoint, buttons...))
		if !cp.Deadline.IsZero() {
			blocks = append(blocks, contextLine("Waiting until "+slackDate(cp.Deadline, "UTC")+"."))
		}
	}
	return text, blocks
}

// renderReminder pings the deciders again without repeating the question.
func renderReminder(r store.Run, n int, who string) string {
	line := fmt.Sprintf(":bell: Still waiting for a decision on run `%s` (reminder %d): the question and its buttons are above.", r.ID, n)
	if who != "" {
		line += "\n" + who
	}
	return line
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
