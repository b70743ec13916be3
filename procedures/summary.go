package procedures

import (
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// Title names a run for people, e.g. "upgrade of prod to 1.7.14".
func Title(r store.Run) string {
	if p, ok := lookup(r.Procedure); ok {
		return p.title(r)
	}
	if r.Procedure == procTraffic {
		return fmt.Sprintf("switch of traffic %s on %s by hand", trafficWord(ports.LBMode(r.Params["mode"])), r.Cluster)
	}
	return r.Procedure + " of " + r.Cluster
}

// Downtime is how long traffic went to the maintenance page; ok is false
// when the run never switched it (or has not switched it back yet).
func Downtime(r store.Run) (time.Duration, bool) {
	f := FactsOf(r)
	a, ok1 := f.DowntimeStart()
	b, ok2 := f.DowntimeEnd()
	if !ok1 || !ok2 {
		return 0, false
	}
	return b.Sub(a), true
}

// Duration is a run's total time so far (or in all, once finished).
func Duration(r store.Run, now time.Time) time.Duration {
	end := r.Ended
	if end.IsZero() {
		end = now
	}
	return end.Sub(r.Created)
}

// Summary says how a finished run ended, in one paragraph.
func Summary(r store.Run) string {
	var b strings.Builder
	f := FactsOf(r)
	title := Title(r)
	title = strings.ToUpper(title[:1]) + title[1:]
	fmt.Fprintf(&b, "%s %s in %s.", title, r.State, format.Duration(Duration(r, r.Ended)))
	if r.Error != "" {
		fmt.Fprintf(&b, " %s.", strings.ToUpper(r.Error[:1])+r.Error[1:])
	}
	if d, ok := Downtime(r); ok {
		fmt.Fprintf(&b, " Downtime %s.", format.Duration(d))
	} else if _, ok := f.DowntimeStart(); ok {
		b.WriteString(" Traffic still goes to the maintenance page.")
	}
	if id := f.BackupID(); id != "" {
		fmt.Fprintf(&b, " Backup %s.", id)
	}
	if s := f.FinalState(); s != "" && r.State != store.StateSucceeded {
		b.WriteString(" " + s)
	}
	return b.String()
}

func trafficWord(m ports.LBMode) string {
	if m == ports.LBMaintenance {
		return "off"
	}
	return "on"
}
