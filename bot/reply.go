package bot

import (
	"strings"

	"github.com/nocobot/nocobot/store"
)

// OutcomeKind is how a command or decision ended, for the audit log.
type OutcomeKind string

const (
	OK      OutcomeKind = "ok"
	Refused OutcomeKind = "refused" // not done: not allowed, a mistake, a busy cluster
	Failed  OutcomeKind = "failed"  // tried, and something outside failed
)

// Outcome is what the audit log records: "ok", "ok: continue",
// "refused: why", "failed: why".
type Outcome struct {
	Kind OutcomeKind
	// Why is the reason of a refusal or failure, or a note on an ok.
	Why string
}

func (o Outcome) String() string {
	if o.Why == "" {
		return string(o.Kind)
	}
	return string(o.Kind) + ": " + o.Why
}

// Field is one labelled part of a reply: a value, or a list.
type Field struct {
	Label string
	Text  Text
	List  []Text
}

// Reply is the dispatcher's answer to one command or decision, as data:
// each transport renders it (Slack as mrkdwn, a terminal as plain lines).
// An empty reply (no title, text or fields) says nothing to the person:
// what happened shows elsewhere (a decision in the run's thread).
type Reply struct {
	Outcome Outcome
	Title   string
	Text    Text
	Fields  []Field

	// Cluster is the cluster the command was about, when known.
	Cluster string
	// RunID is the run the reply is about: the one started, the one
	// that holds a busy cluster, the one decided or cancelled.
	RunID string
	// Started says RunID is a run this command started.
	Started bool
	// Options are the choices open on the checkpoint of the run the
	// reply is about (or of the cluster's active run), if any.
	Options []store.Action
	// Decision is the decision recorded, or the one that came first.
	Decision *store.Decision
	// Window is the maintenance window a window decision was about.
	Window *store.Window
	// Announce is said to everyone where the cluster's runs are shown
	// (a schedule change), besides the reply to the person.
	Announce Text
	// Err is the cause of a refusal or failure (errors.Is, errors.As).
	Err error
	// Data is what a listing showed, for a front that prints it as data
	// (nocobot status --json): a procedures.ClusterStatus,
	// []procedures.BackupInfo or []store.Window.
	Data any
}

// Quiet reports whether the reply has nothing for the person.
func (r Reply) Quiet() bool {
	return r.Title == "" && r.Text.Empty() && len(r.Fields) == 0
}

// Plain renders the reply as plain lines.
func (r Reply) Plain() string {
	var lines []string
	if r.Title != "" {
		lines = append(lines, r.Title)
	}
	if !r.Text.Empty() {
		lines = append(lines, r.Text.Plain())
	}
	for _, f := range r.Fields {
		lines = append(lines, plainField(f)...)
	}
	return strings.Join(lines, "\n")
}

func plainField(f Field) []string {
	if len(f.List) == 0 {
		if f.Label == "" {
			return []string{f.Text.Plain()}
		}
		return []string{f.Label + ": " + f.Text.Plain()}
	}
	var out []string
	if f.Label != "" {
		out = append(out, f.Label+":")
	}
	for _, t := range f.List {
		out = append(out, "  - "+t.Plain())
	}
	return out
}

func ok(why string) Outcome { return Outcome{Kind: OK, Why: why} }

// refused is a refusal whose audit reason is the message's first line.
func refused(msg Text, err error) Reply {
	return Reply{Outcome: Outcome{Kind: Refused, Why: firstLine(msg.Plain())}, Text: msg, Err: err}
}

// failed says what could not be done and why.
func failed(what string, err error) Reply {
	return Reply{Outcome: Outcome{Kind: Failed, Why: firstLine(err.Error())}, Text: NewText(what + ": " + err.Error()), Err: err}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
