package slack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// status answers /nocobase status: nodes, load balancer, the running
// run, the latest backup, the next windows.
func (f *Front) status(ctx context.Context, cluster string) string {
	c, ok := f.eng.Cluster(cluster)
	if !ok {
		return fmt.Sprintf("unknown cluster %q", cluster)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "*Status of %s*\n", cluster)
	nodes, err := c.Nodes.List(ctx)
	if err != nil {
		fmt.Fprintf(&b, "Nodes: unknown (%v)\n", err)
	} else {
		versions := make([]string, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			if !n.Running() {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if v, err := c.App.Version(vctx, n); err == nil {
					versions[i] = v
				} else {
					versions[i] = "not answering"
				}
			}()
		}
		wg.Wait()
		b.WriteString("Nodes:\n")
		for i, n := range nodes {
			v := versions[i]
			if v == "" {
				v = "—"
			}
			health := n.Health
			if health == "" {
				health = "no health check"
			}
			fmt.Fprintf(&b, "• %s: %s, `%s`, version %s, %s\n", n.Name, n.State, n.Image, v, health)
		}
	}
	if mode, err := c.Balancer.Mode(ctx); err != nil {
		fmt.Fprintf(&b, "Load balancer: unknown (%v)\n", err)
	} else {
		fmt.Fprintf(&b, "Load balancer: %s\n", lbText(mode))
	}
	if r, err := f.eng.Store().ActiveRun(ctx, cluster); err == nil {
		fmt.Fprintf(&b, "Running: %s — %s (<@%s>), %s\n", r.ID, procedures.Title(r), r.Requester, runStatus(r))
	} else if errors.Is(err, store.ErrNotFound) {
		b.WriteString("Running: nothing\n")
	} else {
		fmt.Fprintf(&b, "Running: unknown (%v)\n", err)
	}
	if bs, err := c.Backups.List(ctx); err != nil {
		fmt.Fprintf(&b, "Latest backup: unknown (%v)\n", err)
	} else if len(bs) == 0 {
		b.WriteString("Latest backup: none\n")
	} else {
		fmt.Fprintf(&b, "Latest backup: %s\n", backupLine(bs[0], f.now()))
	}
	b.WriteString(f.nextWindows(ctx, cluster))
	return strings.TrimRight(b.String(), "\n")
}

func lbText(m procedures.LBMode) string {
	switch m {
	case procedures.LBMaintenance:
		return "maintenance page (503)"
	case procedures.LBNormal:
		return "to the app nodes"
	}
	return string(m)
}

func backupLine(bi procedures.BackupInfo, now time.Time) string {
	v := "unverified"
	if bi.Verified {
		v = "verified"
	}
	return fmt.Sprintf("%s — %s ago, %s, version %s, %s", bi.ID, fmtAge(now.Sub(bi.Created)), humanBytes(bi.Size), bi.Version, v)
}

func (f *Front) nextWindows(ctx context.Context, cluster string) string {
	ws, err := f.eng.Store().ListWindows(ctx)
	if err != nil {
		return fmt.Sprintf("Next windows: unknown (%v)\n", err)
	}
	ws = slices.DeleteFunc(ws, func(w store.Window) bool { return w.Cluster != cluster })
	if len(ws) == 0 {
		return "Next windows: none\n"
	}
	slices.SortFunc(ws, func(a, b store.Window) int { return a.NextStart.Compare(b.NextStart) })
	var b strings.Builder
	b.WriteString("Next windows:\n")
	for _, w := range ws {
		b.WriteString("• " + windowLine(w) + "\n")
	}
	return b.String()
}

func windowLine(w store.Window) string {
	s := fmt.Sprintf("%s: `%s` %s, %s", w.ID, w.Spec, w.TZ, w.Command)
	if w.Cluster != "" {
		s += " on " + w.Cluster
	}
	switch {
	case w.Paused:
		s += " — paused"
	case !w.NextStart.IsZero():
		s += " — next " + fmtTime(w.NextStart, w.TZ)
		if w.Skip.Equal(w.NextStart) {
			s += " (skipped)"
		}
	}
	if w.Approval {
		s += " — needs a Start click"
	}
	return s
}

func fmtTime(t time.Time, tz string) string {
	if loc, err := time.LoadLocation(tz); err == nil && tz != "" {
		t = t.In(loc)
	} else {
		t = t.UTC()
	}
	return t.Format("Mon 2 Jan 15:04 MST")
}

func (f *Front) history(ctx context.Context, n int) string {
	runs, err := f.eng.Store().ListRuns(ctx, "", n)
	if err != nil {
		return "Could not read the history: " + err.Error()
	}
	if len(runs) == 0 {
		return "No runs yet."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*Last %d runs*\n", len(runs))
	for _, r := range runs {
		fmt.Fprintf(&b, "• %s %s — %s, <@%s>, %s, %s\n", r.ID, r.Created.UTC().Format("2006-01-02 15:04"), procedures.Title(r), r.Requester, r.State, fmtDur(procedures.Duration(r, f.now())))
	}
	return strings.TrimRight(b.String(), "\n")
}

func (f *Front) backups(ctx context.Context, cluster string) string {
	c, ok := f.eng.Cluster(cluster)
	if !ok {
		return fmt.Sprintf("unknown cluster %q", cluster)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	bs, err := c.Backups.List(ctx)
	if err != nil {
		return "Could not list the backups: " + err.Error()
	}
	if len(bs) == 0 {
		return fmt.Sprintf("%s has no backups yet.", cluster)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*Backups of %s*, newest first\n", cluster)
	for _, bi := range bs {
		b.WriteString("• " + backupLine(bi, f.now()) + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// schedule handles "schedule …" through the scheduler.
func (f *Front) schedule(ctx context.Context, sc slack.SlashCommand, cmd bot.Command, cluster string) string {
	s := cmd.Schedule
	if f.sched == nil {
		return f.refuse(ctx, sc, "Scheduling is off: this bot runs without the maintenance window scheduler.")
	}
	if s.Sub == "list" {
		ws, err := f.sched.List(ctx)
		if err != nil {
			f.ephemeral(ctx, sc.ChannelID, sc.UserID, "Could not list the windows: "+err.Error())
			return "error: " + err.Error()
		}
		if len(ws) == 0 {
			f.ephemeral(ctx, sc.ChannelID, sc.UserID, "No maintenance windows.")
			return "ok"
		}
		var b strings.Builder
		b.WriteString("*Maintenance windows*\n")
		for _, w := range ws {
			b.WriteString("• " + windowLine(w) + "\n")
		}
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, strings.TrimRight(b.String(), "\n"))
		return "ok"
	}
	// Changes need the run permission on the window's cluster.
	if s.Sub != "add" {
		w, err := f.eng.Store().GetWindow(ctx, s.ID)
		if err != nil {
			return f.refuse(ctx, sc, fmt.Sprintf("There is no window %s. See `%s schedule list`.", s.ID, f.command))
		}
		cluster = w.Cluster
	}
	if !f.auth.allowed(ctx, cluster, sc.UserID, permRun) {
		return f.refuse(ctx, sc, fmt.Sprintf("You are not allowed to change maintenance windows of %s.", cluster))
	}
	ch := f.channelForCluster(cluster, sc.ChannelID)
	switch s.Sub {
	case "add":
		w := store.Window{
			Cluster: cluster, Spec: s.Cron, TZ: s.TZ, Command: s.Text, Duration: s.Duration,
			Announce: s.Announce, Approval: s.Approval, CreatedBy: sc.UserID, Created: f.now(),
		}
		if w.TZ == "" {
			w.TZ = "UTC"
		}
		saved, next, err := f.sched.Add(ctx, w)
		if err != nil {
			return f.refuse(ctx, sc, fmt.Sprintf("Could not add the window: %v\nUsage: %s", err, bot.Usage(f.command, "schedule")))
		}
		starts := make([]string, len(next))
		for i, t := range next {
			starts[i] = fmtTime(t, saved.TZ)
		}
		_, _ = f.say(ctx, ch, fmt.Sprintf("<@%s> scheduled window %s: %s. Next: %s.", sc.UserID, saved.ID, windowLine(saved), strings.Join(starts, ", ")))
	case "remove":
		if err := f.sched.Remove(ctx, s.ID); err != nil {
			f.ephemeral(ctx, sc.ChannelID, sc.UserID, "Could not remove: "+err.Error())
			return "error: " + err.Error()
		}
		_, _ = f.say(ctx, ch, fmt.Sprintf("<@%s> removed maintenance window %s.", sc.UserID, s.ID))
	case "pause", "resume":
		w, err := f.sched.SetPaused(ctx, s.ID, s.Sub == "pause")
		if err != nil {
			f.ephemeral(ctx, sc.ChannelID, sc.UserID, fmt.Sprintf("Could not %s: %v", s.Sub, err))
			return "error: " + err.Error()
		}
		_, _ = f.say(ctx, ch, fmt.Sprintf("<@%s> %sd maintenance window %s.", sc.UserID, s.Sub, windowLine(w)))
	}
	return "ok"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// fmtDur: "12.3 s", "4 min 05 s", "2 h 03 min".
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
}

// fmtSecs is a running time, whole seconds: "40 s", "3 min 12 s".
func fmtSecs(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
	return fmtDur(d)
}

func fmtAge(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
