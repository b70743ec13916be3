package procedures

import (
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/store"
)

// Title names a run for people, e.g. "upgrade of prod to 1.7.14".
func Title(r store.Run) string {
	switch r.Procedure {
	case ProcUpgrade:
		if from := r.Fact("from_version"); from != "" {
			return fmt.Sprintf("upgrade of %s from %s to %s", r.Cluster, from, r.Params["version"])
		}
		return fmt.Sprintf("upgrade of %s to %s", r.Cluster, r.Params["version"])
	case ProcMaintain:
		acts := actionsOf(r.Params)
		if len(acts) == 0 {
			return fmt.Sprintf("maintenance of %s (manual window)", r.Cluster)
		}
		s := make([]string, len(acts))
		for i, a := range acts {
			s[i] = a.String()
		}
		return fmt.Sprintf("maintenance of %s: %s", r.Cluster, strings.Join(s, ", "))
	case ProcStart:
		return fmt.Sprintf("first start of %s", r.Cluster)
	}
	return r.Procedure + " of " + r.Cluster
}

// Downtime is how long traffic went to the maintenance page; ok is false
// when the run never switched it (or has not switched it back yet).
func Downtime(r store.Run) (time.Duration, bool) {
	a, err1 := time.Parse(time.RFC3339Nano, r.Fact("downtime_start"))
	b, err2 := time.Parse(time.RFC3339Nano, r.Fact("downtime_end"))
	if err1 != nil || err2 != nil {
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
	title := Title(r)
	title = strings.ToUpper(title[:1]) + title[1:]
	fmt.Fprintf(&b, "%s %s in %s.", title, r.State, format.Duration(Duration(r, r.Ended)))
	if r.Error != "" {
		fmt.Fprintf(&b, " %s.", strings.ToUpper(r.Error[:1])+r.Error[1:])
	}
	if d, ok := Downtime(r); ok {
		fmt.Fprintf(&b, " Downtime %s.", format.Duration(d))
	} else if r.Fact("downtime_start") != "" {
		b.WriteString(" Traffic still goes to the maintenance page.")
	}
	if id := r.Fact("backup"); id != "" {
		fmt.Fprintf(&b, " Backup %s.", id)
	}
	if s := r.Fact("final_state"); s != "" && r.State != store.StateSucceeded {
		b.WriteString(" " + s)
	}
	return b.String()
}
