package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/window"
)

// status answers "status": nodes, load balancer, the running run, the
// latest backup, the next windows.
func (d *Dispatcher) status(ctx context.Context, cluster string) Reply {
	s, err := d.eng.Status(ctx, cluster)
	if err != nil {
		return failed("Could not read the status", err)
	}
	r := Reply{Outcome: ok(""), Title: "Status of " + cluster, Data: s}
	nodes := Field{Label: "Nodes"}
	if s.NodesErr != nil {
		nodes.Text = T(fmt.Sprintf("unknown (%v)", s.NodesErr))
	}
	for _, n := range s.Nodes {
		v := n.Version
		switch {
		case n.VersionErr != nil:
			v = "not answering"
		case v == "":
			v = "—"
		}
		health := n.Health
		if health == "" {
			health = "no health check"
		}
		nodes.List = append(nodes.List, T(n.Name, ": ", n.State, ", ", Code(n.Image), ", version ", v, ", ", health))
	}
	r.Fields = append(r.Fields, nodes)
	lb := T(TrafficText(s.Traffic))
	switch {
	case procedures.SameCause(s.NodesErr, s.TrafficErr):
		lb = T("unknown (for the same reason)")
	case s.TrafficErr != nil:
		lb = T(fmt.Sprintf("unknown (%v)", s.TrafficErr))
	}
	r.Fields = append(r.Fields, Field{Label: "Load balancer", Text: lb})
	running := T("nothing")
	switch {
	case s.ActiveErr != nil:
		running = T(fmt.Sprintf("unknown (%v)", s.ActiveErr))
	case s.Active != nil:
		a := *s.Active
		running = T(a.ID, " — ", procedures.Title(a), " (", Person(a.Requester), "), ", RunStatus(a))
		r.RunID = a.ID
		if a.Checkpoint != nil {
			r.Options = a.Checkpoint.Options
		}
	}
	r.Fields = append(r.Fields, Field{Label: "Running", Text: running})
	backup := T("none")
	switch {
	case s.BackupsErr != nil:
		backup = T(fmt.Sprintf("unknown (%v)", s.BackupsErr))
	case s.LatestBackup != nil:
		backup = backupLine(*s.LatestBackup, d.now())
	}
	r.Fields = append(r.Fields, Field{Label: "Latest backup", Text: backup})
	windows := Field{Label: "Next windows"}
	switch {
	case s.WindowsErr != nil:
		windows.Text = T(fmt.Sprintf("unknown (%v)", s.WindowsErr))
	case len(s.Windows) == 0:
		windows.Text = T("none")
	}
	for _, w := range s.Windows {
		windows.List = append(windows.List, WindowLine(w))
	}
	r.Fields = append(r.Fields, windows)
	return r
}

// Overview is the status of every cluster, for a front's overview (the
// Slack App Home): a look, not a command, so it writes no audit entry.
func (d *Dispatcher) Overview(ctx context.Context) []Reply {
	names := d.eng.ClusterNames()
	out := make([]Reply, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			out[i] = d.status(ctx, name)
			out[i].Cluster = name
		})
	}
	wg.Wait()
	return out
}

// TrafficText says where the load balancer sends traffic.
func TrafficText(m ports.LBMode) string {
	switch m {
	case ports.LBMaintenance:
		return "maintenance page (503)"
	case ports.LBNormal:
		return "to the app nodes"
	}
	return string(m)
}

// RunStatus says where a run is, in a few words.
func RunStatus(r store.Run) string {
	cur := ""
	if r.Current >= 0 && r.Current < len(r.Steps) {
		cur = r.Steps[r.Current].Title
	}
	forward := 0
	for _, s := range r.Steps {
		if !s.Rollback {
			forward++
		}
	}
	switch r.State {
	case store.StateRunning:
		return fmt.Sprintf("running: step %d of %d, %s", min(r.Current+1, forward), forward, cur)
	case store.StateWaiting:
		return "waiting for a decision: " + cur
	case store.StateFailed:
		return "waiting for a decision: " + cur + " failed (" + choices(r.Checkpoint) + ")"
	case store.StateRollingBack:
		return "rolling back: " + cur
	case store.StateSucceeded:
		return "succeeded in " + format.Duration(procedures.Duration(r, r.Ended))
	case store.StateRolledBack:
		return "rolled back in " + format.Duration(procedures.Duration(r, r.Ended))
	case store.StateAborted:
		return "aborted after " + format.Duration(procedures.Duration(r, r.Ended))
	}
	return string(r.State)
}

func backupLine(bi ports.BackupInfo, now time.Time) Text {
	v := "unverified"
	if bi.Verified {
		v = "verified"
	}
	if bi.Holds != "" {
		v += ", " + bi.Holds
	}
	return T(bi.ID, " — ", format.Age(now.Sub(bi.Created)), " ago, ", format.Bytes(bi.Size), ", version ", bi.Version, ", ", v)
}

// history lists the last n runs, of one cluster or ("") all.
func (d *Dispatcher) history(ctx context.Context, cluster string, n int) Reply {
	runs, err := d.eng.Runs(ctx, cluster, n)
	if err != nil {
		return failed("Could not read the history", err)
	}
	if len(runs) == 0 {
		return Reply{Outcome: ok(""), Text: T("No runs yet."), Data: runs}
	}
	f := Field{}
	for _, r := range runs {
		f.List = append(f.List, T(r.ID, " ", r.Created.UTC().Format("2006-01-02 15:04"), " — ", procedures.Title(r), ", ",
			Person(r.Requester), ", ", OutcomeWords(r.State), ", ", format.Duration(procedures.Duration(r, d.now()))))
	}
	return Reply{Outcome: ok(""), Title: fmt.Sprintf("Last %d runs", len(runs)), Fields: []Field{f}, Data: runs}
}

func (d *Dispatcher) backups(ctx context.Context, cluster string) Reply {
	bs, err := d.eng.Backups(ctx, cluster)
	if err != nil {
		return failed("Could not list the backups", err)
	}
	if len(bs) == 0 {
		return Reply{Outcome: ok(""), Text: T(fmt.Sprintf("%s has no backups yet.", cluster)), Data: bs}
	}
	f := Field{}
	for _, bi := range bs {
		f.List = append(f.List, backupLine(bi, d.now()))
	}
	return Reply{Outcome: ok(""), Title: fmt.Sprintf("Backups of %s, newest first", cluster), Fields: []Field{f}, Data: bs}
}

// WindowLine describes a maintenance window in one line. "next" is the
// start that will run: a skipped start is named as skipped after it.
func WindowLine(w store.Window) Text {
	t := T(w.ID, ": ", Code(w.Spec), " ", w.TZ, ", ", w.Command)
	if w.Cluster != "" {
		t = T(t, " on ", w.Cluster)
	}
	switch next := NextRun(w); {
	case w.Paused:
		t = T(t, " — paused")
	case !next.IsZero():
		t = T(t, " — next ", Local{next, w.TZ})
		if w.Skip.Equal(w.NextStart) {
			t = T(t, " (", Local{w.NextStart, w.TZ}, " skipped)")
		}
	}
	if w.Approval {
		t = T(t, " — needs a Start click")
	}
	return t
}

// NextRun is the start of w that will run: its next start, or the one
// after when that is skipped; zero when paused or none is known.
func NextRun(w store.Window) time.Time {
	if w.Paused || w.NextStart.IsZero() {
		return time.Time{}
	}
	if !w.Skip.Equal(w.NextStart) {
		return w.NextStart
	}
	sched, _, err := window.ParseSpec(w.Spec, w.TZ)
	if err != nil {
		return time.Time{}
	}
	return sched.Next(w.NextStart)
}

// StateWords says a run's state in words that fit "the run is …" and
// "(…)": "stopped after a failed step", "rolled back".
func StateWords(s store.RunState) string {
	switch s {
	case store.StateWaiting:
		return "waiting for a decision"
	case store.StateFailed:
		return "waiting for a decision after a failed step"
	case store.StateRollingBack:
		return "rolling back"
	case store.StateRolledBack:
		return "rolled back"
	}
	return string(s)
}

// OutcomeWords is a run's state in a column of runs (history): a run
// stopped at a failure waits for a decision as much as one at a
// checkpoint does, and reads so.
func OutcomeWords(s store.RunState) string {
	switch s {
	case store.StateWaiting, store.StateFailed:
		return "waiting for a decision"
	case store.StateRollingBack:
		return "rolling back"
	case store.StateRolledBack:
		return "rolled back"
	}
	return string(s)
}

// choices names the options of a checkpoint: "Retry, Roll back or Abort".
func choices(cp *store.Checkpoint) string {
	if cp == nil || len(cp.Options) == 0 {
		return "a decision"
	}
	labels := make([]string, len(cp.Options))
	for i, a := range cp.Options {
		labels[i] = ActionLabel(a)
	}
	if len(labels) == 1 {
		return labels[0]
	}
	return strings.Join(labels[:len(labels)-1], ", ") + " or " + labels[len(labels)-1]
}
