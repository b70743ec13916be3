package notify

import (
	"fmt"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Event names a receiver sees, in the body's "event" and the
// X-Nocobot-Event header. They are stable: docs/webhooks.md lists them.
const (
	RunStarted      = "run.started"
	RunWaiting      = "run.waiting"
	RunFinished     = "run.finished"
	WindowAnnounced = "window.announced"
)

// Events are every event a webhook can be sent, the default set.
var Events = []string{RunStarted, RunWaiting, RunFinished, WindowAnnounced}

// PayloadVersion is the body's "version"; it changes only when a key
// changes meaning or goes away (new keys may appear without it).
const PayloadVersion = 1

// Payload is the JSON body of a delivery. Its keys are stable and
// documented in docs/webhooks.md. It carries no secret: nothing from the
// configuration but the cluster's name, and none of the run's internal
// facts.
type Payload struct {
	Version int    `json:"version"`
	ID      string `json:"id"`    // the same for the same fact, also when republished after a restart
	Event   string `json:"event"` // run.started, run.waiting, run.finished, window.announced
	// Status is "firing" while a person is needed (run.waiting),
	// "resolved" when the run is over (run.finished), "info" otherwise;
	// with DedupKey it is what Alertmanager-, PagerDuty- or Opsgenie-style
	// receivers open and close an incident with.
	Status   string `json:"status"`
	Severity string `json:"severity"` // critical, warning, info
	// DedupKey is one per run ("nocobot/<cluster>/<run id>") or per start
	// of a window ("nocobot/<cluster>/window/<id>/<start>").
	DedupKey   string            `json:"dedup_key"`
	Summary    string            `json:"summary"` // one line for a person
	Source     string            `json:"source"`  // "nocobot"
	At         time.Time         `json:"at"`
	Cluster    string            `json:"cluster"`
	Run        *RunInfo          `json:"run,omitempty"`
	Checkpoint *CheckpointInfo   `json:"checkpoint,omitempty"`
	Window     *WindowInfo       `json:"window,omitempty"`
	Labels     map[string]string `json:"labels"` // cluster, procedure, event…: for routing
}

// RunInfo is the run an event is about.
type RunInfo struct {
	ID        string            `json:"id"`
	Procedure string            `json:"procedure"`
	Title     string            `json:"title"` // "upgrade of prod to 1.7.14"
	Params    map[string]string `json:"params,omitempty"`
	Requester string            `json:"requester"`
	Via       string            `json:"via,omitempty"`
	State     string            `json:"state"`
	Step      string            `json:"step,omitempty"` // the step being run or waited on
	Created   time.Time         `json:"created"`
	Ended     *time.Time        `json:"ended,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// CheckpointInfo is the question a waiting run asks.
type CheckpointInfo struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"` // verify, manual, failure, interrupted, resume
	Question string     `json:"question"`
	Options  []string   `json:"options"` // continue, rollback, abort, retry
	URL      string     `json:"url,omitempty"`
	Opened   time.Time  `json:"opened"`
	Deadline *time.Time `json:"deadline,omitempty"`
}

// WindowInfo is the maintenance window an announcement is about.
type WindowInfo struct {
	ID       string    `json:"id"`
	Command  string    `json:"command"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Approval bool      `json:"approval"`
}

// payloadFor is the body for an engine event, or false when no webhook
// is sent for that kind of event.
func payloadFor(ev events.Event) (Payload, bool) {
	p := Payload{Version: PayloadVersion, Source: "nocobot", At: ev.At.UTC(), Status: "info", Severity: "info"}
	r := ev.Run
	switch ev.Kind {
	case events.RunStarted:
		p.Event = RunStarted
		p.Summary = fmt.Sprintf("%s started by %s (run %s)", procedures.Title(r), r.Requester, r.ID)
	case events.Checkpoint:
		cp := r.Checkpoint
		if cp == nil {
			return Payload{}, false
		}
		p.Event, p.Status, p.Severity = RunWaiting, "firing", "warning"
		if cp.Kind == "failure" || cp.Kind == "interrupted" {
			p.Severity = "critical"
		}
		p.Checkpoint = &CheckpointInfo{ID: cp.ID, Kind: cp.Kind, Question: cp.Question, URL: cp.URL, Opened: cp.Opened.UTC(), Deadline: timePtr(cp.Deadline)}
		for _, o := range cp.Options {
			p.Checkpoint.Options = append(p.Checkpoint.Options, string(o))
		}
		p.Summary = fmt.Sprintf("%s waits for a decision (%s) since %s (run %s)", procedures.Title(r), cp.Kind, cp.Opened.UTC().Format("15:04 MST"), r.ID)
	case events.RunFinished:
		p.Event, p.Status = RunFinished, "resolved"
		if r.State != store.StateSucceeded {
			p.Severity = "warning"
		}
		p.Summary = fmt.Sprintf("%s %s (run %s)", procedures.Title(r), r.State, r.ID)
	case events.WindowAnnounced:
		w := ev.Window
		if w == nil {
			return Payload{}, false
		}
		p.Event = WindowAnnounced
		p.Cluster = w.Window.Cluster
		p.Window = &WindowInfo{ID: w.Window.ID, Command: w.Window.Command, Start: w.Start.UTC(), End: w.End.UTC(), Approval: w.Window.Approval}
		p.DedupKey = fmt.Sprintf("nocobot/%s/window/%s/%s", p.Cluster, w.Window.ID, w.Start.UTC().Format(time.RFC3339))
		p.ID = p.DedupKey + "/" + p.Event
		p.Summary = fmt.Sprintf("%s: maintenance window %s runs %q at %s", p.Cluster, w.Window.ID, w.Window.Command, w.Start.UTC().Format("2006-01-02 15:04 MST"))
		p.Labels = map[string]string{"cluster": p.Cluster, "event": p.Event, "window": w.Window.ID}
		return p, true
	default:
		return Payload{}, false
	}
	p.Cluster = r.Cluster
	p.DedupKey = fmt.Sprintf("nocobot/%s/%s", r.Cluster, r.ID)
	p.ID = p.DedupKey + "/" + p.Event
	if p.Checkpoint != nil {
		p.ID += "/" + p.Checkpoint.ID
	}
	p.Run = &RunInfo{ID: r.ID, Procedure: r.Procedure, Title: procedures.Title(r), Params: r.Params, Requester: r.Requester, Via: r.Via,
		State: string(r.State), Created: r.Created.UTC(), Ended: timePtr(r.Ended), Error: r.Error}
	if r.Current >= 0 && r.Current < len(r.Steps) {
		p.Run.Step = r.Steps[r.Current].Name
	}
	p.Labels = map[string]string{"cluster": r.Cluster, "procedure": r.Procedure, "event": p.Event}
	if p.Checkpoint != nil {
		p.Labels["checkpoint"] = p.Checkpoint.Kind
	}
	return p, true
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
