package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// The --json output. Every key is always present (null when there is no
// value) and named in docs/cli.md; a test holds the two together, so a
// script can rely on them. Times are RFC 3339 in UTC, durations whole
// seconds.

type jsonRun struct {
	ID        string     `json:"id"`
	Cluster   string     `json:"cluster"`
	Procedure string     `json:"procedure"`
	Title     string     `json:"title"`
	Requester string     `json:"requester"`
	Via       string     `json:"via"`
	State     string     `json:"state"`
	Status    string     `json:"status"`
	Waiting   bool       `json:"waiting"`
	Options   []string   `json:"options"`
	Step      string     `json:"step"`
	Started   time.Time  `json:"started"`
	Ended     *time.Time `json:"ended"`
	Duration  int64      `json:"duration_seconds"`
	Downtime  *int64     `json:"downtime_seconds"`
	Error     string     `json:"error"`
}

func runJSON(r store.Run, now time.Time) jsonRun {
	j := jsonRun{
		ID: r.ID, Cluster: r.Cluster, Procedure: r.Procedure, Title: procedures.Title(r), Requester: r.Requester, Via: r.Via,
		State: string(r.State), Status: bot.RunStatus(r), Options: []string{}, Started: r.Created.UTC(),
		Duration: seconds(procedures.Duration(r, now)), Error: r.Error,
	}
	if r.Checkpoint != nil && (r.State == store.StateWaiting || r.State == store.StateFailed) {
		j.Waiting = true
		for _, o := range r.Checkpoint.Options {
			j.Options = append(j.Options, string(o))
		}
	}
	if r.Current >= 0 && r.Current < len(r.Steps) && !r.State.Finished() {
		j.Step = r.Steps[r.Current].Title
	}
	if !r.Ended.IsZero() {
		t := r.Ended.UTC()
		j.Ended = &t
	}
	if d, ok := procedures.Downtime(r); ok {
		s := seconds(d)
		j.Downtime = &s
	}
	return j
}

type jsonNode struct {
	Name         string  `json:"name"`
	State        string  `json:"state"`
	Image        string  `json:"image"`
	Version      string  `json:"version"`
	VersionError *string `json:"version_error"`
	Health       string  `json:"health"`
}

type jsonBackup struct {
	ID       string    `json:"id"`
	Cluster  string    `json:"cluster"`
	Version  string    `json:"version"`
	Image    string    `json:"image"`
	Created  time.Time `json:"created"`
	Age      int64     `json:"age_seconds"`
	Size     int64     `json:"size_bytes"`
	Verified bool      `json:"verified"`
	RunID    string    `json:"run_id"`
	Kind     string    `json:"kind"`
	Holds    string    `json:"holds"`
	Extras   []string  `json:"extras"`
}

func backupJSON(b ports.BackupInfo, now time.Time) jsonBackup {
	return jsonBackup{ID: b.ID, Cluster: b.Cluster, Version: b.Version, Image: b.Image, Created: b.Created.UTC(),
		Age: seconds(now.Sub(b.Created)), Size: b.Size, Verified: b.Verified, RunID: b.RunID, Kind: b.Kind,
		Holds: b.Holds, Extras: append([]string{}, b.Extras...)}
}

type jsonWindow struct {
	ID          string     `json:"id"`
	Cluster     string     `json:"cluster"`
	Spec        string     `json:"spec"`
	TZ          string     `json:"tz"`
	Command     string     `json:"command"`
	Duration    int64      `json:"duration_seconds"`
	Announce    int64      `json:"announce_seconds"`
	Approval    bool       `json:"approval"`
	Paused      bool       `json:"paused"`
	FromConfig  bool       `json:"from_config"`
	NextRun     *time.Time `json:"next_run"`
	Skipped     *time.Time `json:"skipped_start"`
	IdenticalTo []string   `json:"identical_to"`
}

// windowsJSON describes ws; identical windows name each other.
func windowsJSON(ws []store.Window) []jsonWindow {
	out := make([]jsonWindow, 0, len(ws))
	for _, w := range ws {
		j := jsonWindow{ID: w.ID, Cluster: w.Cluster, Spec: w.Spec, TZ: w.TZ, Command: w.Command, Duration: seconds(w.Duration),
			Announce: seconds(w.Announce), Approval: w.Approval, Paused: w.Paused, FromConfig: w.FromConfig, IdenticalTo: []string{}}
		if t := bot.NextRun(w); !t.IsZero() {
			t = t.UTC()
			j.NextRun = &t
		}
		if !w.Paused && !w.Skip.IsZero() && w.Skip.Equal(w.NextStart) {
			t := w.Skip.UTC()
			j.Skipped = &t
		}
		j.IdenticalTo = append(j.IdenticalTo, bot.IdenticalWindows(ws, w)...)
		out = append(out, j)
	}
	return out
}

type jsonStatus struct {
	Cluster      string       `json:"cluster"`
	Nodes        []jsonNode   `json:"nodes"`
	NodesError   *string      `json:"nodes_error"`
	Traffic      string       `json:"traffic"`
	TrafficError *string      `json:"traffic_error"`
	Running      *jsonRun     `json:"running"`
	RunningError *string      `json:"running_error"`
	LatestBackup *jsonBackup  `json:"latest_backup"`
	BackupsError *string      `json:"backups_error"`
	Windows      []jsonWindow `json:"windows"`
	WindowsError *string      `json:"windows_error"`
}

func statusJSON(s procedures.ClusterStatus, now time.Time) jsonStatus {
	j := jsonStatus{Cluster: s.Cluster, Nodes: []jsonNode{}, NodesError: errText(s.NodesErr), Traffic: string(s.Traffic),
		TrafficError: errText(s.TrafficErr), RunningError: errText(s.ActiveErr), BackupsError: errText(s.BackupsErr),
		Windows: windowsJSON(s.Windows), WindowsError: errText(s.WindowsErr)}
	if s.TrafficErr != nil {
		j.Traffic = string(ports.LBUnknown)
	}
	for _, n := range s.Nodes {
		j.Nodes = append(j.Nodes, jsonNode{Name: n.Name, State: n.State, Image: n.Image, Version: n.Version,
			VersionError: errText(n.VersionErr), Health: n.Health})
	}
	if s.Active != nil {
		r := runJSON(*s.Active, now)
		j.Running = &r
	}
	if s.LatestBackup != nil {
		b := backupJSON(*s.LatestBackup, now)
		j.LatestBackup = &b
	}
	return j
}

type jsonAudit struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	User    string    `json:"user"`
	Via     string    `json:"via"`
	Channel string    `json:"channel"`
	Action  string    `json:"action"`
	RunID   string    `json:"run_id"`
	Outcome string    `json:"outcome"`
}

func auditJSON(a store.AuditEntry) jsonAudit {
	return jsonAudit{ID: a.ID, At: a.At.UTC(), User: a.User, Via: a.Via, Channel: a.Channel, Action: a.Action, RunID: a.RunID, Outcome: a.Outcome}
}

type jsonPlanNode struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Image string `json:"image"`
}

type jsonPlanStep struct {
	Number     int    `json:"number"`
	Title      string `json:"title"`
	Checkpoint bool   `json:"checkpoint"`
}

type jsonPlan struct {
	Cluster    string         `json:"cluster"`
	Procedure  string         `json:"procedure"`
	Title      string         `json:"title"`
	Nodes      []jsonPlanNode `json:"nodes"`
	NodesError *string        `json:"nodes_error"`
	Migrations string         `json:"migrations"`
	Details    []string       `json:"details"`
	Backup     string         `json:"backup"`
	Redis      string         `json:"redis"`
	Steps      []jsonPlanStep `json:"steps"`
	Rollback   []jsonPlanStep `json:"rollback_steps"`
}

func planJSON(p procedures.PlanView) jsonPlan {
	j := jsonPlan{Cluster: p.Cluster, Procedure: p.Procedure, Title: p.Title, Nodes: []jsonPlanNode{}, NodesError: errText(p.NodesErr),
		Migrations: p.Migrations, Details: append([]string{}, p.Details...), Backup: p.Backup, Redis: p.Redis, Steps: []jsonPlanStep{}, Rollback: []jsonPlanStep{}}
	for _, n := range p.Nodes {
		j.Nodes = append(j.Nodes, jsonPlanNode{Name: n.Name, State: n.State, Image: n.Image})
	}
	for i, s := range p.Steps {
		j.Steps = append(j.Steps, jsonPlanStep{Number: i + 1, Title: s.Title, Checkpoint: s.Checkpoint})
	}
	for i, s := range p.Rollback {
		j.Rollback = append(j.Rollback, jsonPlanStep{Number: i + 1, Title: s.Title})
	}
	return j
}

func seconds(d time.Duration) int64 { return int64(d.Round(time.Second) / time.Second) }

func errText(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// writeJSON prints v indented, with what a terminal might act on escaped.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", escapeJSON(b))
	return err
}
