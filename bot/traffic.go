package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
)

// trafficSwitcher is the engine's switch of a load balancer by hand
// (*procedures.Engine); an engine without it cannot.
type trafficSwitcher interface {
	SetTraffic(ctx context.Context, cluster string, mode ports.LBMode, by, via string) (procedures.TrafficSwitch, error)
}

// traffic answers "traffic on|off": the run permission on the cluster,
// then the engine switches and probes.
func (d *Dispatcher) traffic(ctx context.Context, who Caller, cluster string, mode ports.LBMode) Reply {
	sw, can := d.eng.(trafficSwitcher)
	if !can {
		return refused(T("This bot cannot switch traffic by hand."), nil)
	}
	if !d.allowed(ctx, who, cluster, permRun) {
		return refused(d.denied(who, fmt.Sprintf("You are not allowed to switch traffic on %s.", cluster)), nil)
	}
	sw2, err := sw.SetTraffic(ctx, cluster, mode, who.User, who.Via)
	got := sw2.Mode
	var busy *procedures.TrafficBusyError
	if errors.As(err, &busy) {
		b := busy.Run
		r := refused(T(cluster, " is held by run ", b.ID, " (", procedures.Title(b), "), which is ", string(b.State),
			": the run switches traffic itself. Answer it, or stop it with ", Code(who.Prefix+" cancel "+b.ID), " first."), err)
		r.RunID = b.ID
		return r
	}
	word := "on"
	if mode == ports.LBMaintenance {
		word = "off"
	}
	if err != nil {
		r := failed("Could not switch traffic "+word+" on "+cluster, err)
		r.RunID = sw2.RunID
		return r
	}
	text := T("Traffic on ", cluster, ": ", TrafficText(got), " (checked after the switch).")
	if got != mode {
		text = T("Asked the load balancer of ", cluster, " to switch traffic ", word, ", but it reports ", TrafficText(got), " (none configured, or it cannot tell).")
	}
	// The audit entry says what the balancer reports, not only what was asked.
	return Reply{Outcome: ok(word + "; load balancer reports: " + TrafficText(got)), Cluster: cluster, Text: text, RunID: sw2.RunID,
		Announce: T(Person(who.User), " switched traffic on ", cluster, " by hand: ", TrafficText(got), ".")}
}
