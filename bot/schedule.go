package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// IdenticalWindows names the other windows that start what w starts, when w
// does: two such windows are a mistake nobody means.
func IdenticalWindows(ws []store.Window, w store.Window) []string {
	var ids []string
	for _, o := range ws {
		if o.ID != w.ID && o.Cluster == w.Cluster && strings.Join(strings.Fields(o.Spec), " ") == strings.Join(strings.Fields(w.Spec), " ") &&
			o.TZ == w.TZ && strings.Join(strings.Fields(o.Command), " ") == strings.Join(strings.Fields(w.Command), " ") {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

// schedule handles "schedule …" through the scheduler. Changes are
// announced to everyone where the cluster's runs are shown.
func (d *Dispatcher) schedule(ctx context.Context, who Caller, cmd Command) Reply {
	s := cmd.Schedule
	if d.sched == nil {
		return refused(T("Scheduling is off: this bot runs without the maintenance window scheduler."), nil)
	}
	// A new window's cluster: the one named, the channel's, or the only one.
	var cluster string
	if s.Sub == "add" {
		var err error
		if cluster, err = d.ResolveCluster(cmd.Cluster, who); err != nil {
			return refused(T(err.Error()+"\nUsage: "+Usage(who.Prefix, cmd.Name)), err)
		}
	}
	if s.Sub == "list" {
		ws, err := d.sched.List(ctx)
		if err != nil {
			return failed("Could not list the windows", err)
		}
		if len(ws) == 0 {
			return Reply{Outcome: ok(""), Text: T("No maintenance windows."), Data: ws}
		}
		f := Field{}
		for _, w := range ws {
			line := WindowLine(w)
			if same := IdenticalWindows(ws, w); len(same) > 0 {
				line = T(line, " — identical to ", strings.Join(same, ", "))
			}
			f.List = append(f.List, line)
		}
		return Reply{Outcome: ok(""), Title: "Maintenance windows", Fields: []Field{f}, Data: ws}
	}
	// Changes need the run permission on the window's cluster.
	if s.Sub != "add" {
		w, err := d.eng.Window(ctx, s.ID)
		if err != nil {
			return refused(T("There is no window ", procedures.Typed(s.ID), ". See ", Code(who.Prefix+" schedule list"), "."), err)
		}
		cluster = w.Cluster
	}
	if !d.allowed(ctx, who, cluster, permRun) {
		return refused(d.denied(who, fmt.Sprintf("You are not allowed to change maintenance windows of %s.", cluster)), nil)
	}
	r := Reply{Outcome: ok(""), Cluster: cluster}
	switch s.Sub {
	case "add":
		w := store.Window{
			Cluster: cluster, Spec: s.Cron, TZ: s.TZ, Command: s.Text, Duration: s.Duration,
			Announce: s.Announce, Approval: s.Approval, CreatedBy: who.User, Created: d.now(),
		}
		if w.TZ == "" {
			w.TZ = "UTC"
		}
		saved, next, err := d.sched.Add(ctx, w)
		if err != nil {
			return refused(T(fmt.Sprintf("Could not add the window: %v\nUsage: %s", err, Usage(who.Prefix, "schedule"))), err)
		}
		r.Announce = T(Person(who.User), " scheduled window ", WindowLine(saved), ". Next: ")
		for i, t := range next {
			if i > 0 {
				r.Announce = T(r.Announce, ", ")
			}
			r.Announce = T(r.Announce, Local{t, saved.TZ})
		}
		r.Announce = T(r.Announce, ".")
		if ws, err := d.sched.List(ctx); err == nil {
			if same := IdenticalWindows(ws, saved); len(same) > 0 {
				r.Announce = T(r.Announce, " Warning: it is identical to window ", strings.Join(same, ", "),
					" (same cluster, schedule, zone and command), so both start the same run; remove one with ",
					Code(who.Prefix+" schedule remove <id>"), ".")
			}
		}
	case "remove":
		if err := d.sched.Remove(ctx, s.ID); err != nil {
			return failed("Could not remove", err)
		}
		r.Announce = T(Person(who.User), " removed maintenance window ", s.ID, ".")
	case "pause", "resume":
		w, err := d.sched.SetPaused(ctx, s.ID, s.Sub == "pause")
		if err != nil {
			return failed("Could not "+s.Sub, err)
		}
		r.Announce = T(Person(who.User), " ", s.Sub, "d maintenance window ", WindowLine(w), ".")
	case "skip":
		w, err := d.eng.Window(ctx, s.ID)
		if err != nil {
			return failed("Could not read the window", err)
		}
		if w.NextStart.IsZero() || w.Paused {
			return refused(T("Window ", s.ID, " has no next start to skip."), nil)
		}
		if err := d.sched.Skip(ctx, s.ID, w.NextStart, who.User); err != nil {
			return refused(T(fmt.Sprintf("Could not skip window %s: %v", s.ID, err)), err)
		}
		r.Announce = T(Person(who.User), " skipped the start of window ", s.ID, " at ", Local{w.NextStart, w.TZ}, ".")
	}
	return r
}
