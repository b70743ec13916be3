package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Attach checks that who may follow run id and answer its checkpoints
// (the decide permission on its cluster) before a terminal attaches to
// it, and audits the attempt. The reply carries the run's id and, when
// it has finished, its summary.
func (d *Dispatcher) Attach(ctx context.Context, who Caller, id, said string) Reply {
	r := d.attach(ctx, who, id)
	r.RunID = id
	return d.record(ctx, who, said, r)
}

func (d *Dispatcher) attach(ctx context.Context, who Caller, id string) Reply {
	run, err := d.eng.RunByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return refused(NewText("There is no run ", procedures.Typed(id), ". See ", Code(who.Prefix+" history"), "."), err)
	}
	if err != nil {
		return failed("Could not read the run", err)
	}
	if !d.allowed(ctx, who, run.Cluster, permDecide) {
		return refused(d.denied(who, fmt.Sprintf("You are not allowed to decide checkpoints on %s.", run.Cluster)), nil)
	}
	r := Reply{Outcome: ok(""), Cluster: run.Cluster}
	if run.State.Finished() {
		r.Outcome = ok("finished")
		r.Text = NewText(procedures.Summary(run))
	}
	return r
}
