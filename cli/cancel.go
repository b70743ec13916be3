package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/procedures"
)

// abortWithin bounds how long cancel drives an abort here: settling
// interrupted image changes may take minutes, never more.
const abortWithin = 10 * time.Minute

// driveAbort makes a recorded abort happen: when no live process drives
// run id, this one takes the run and drives the abort to its end;
// otherwise it says which process applies it. A process killed while it
// drove the run still holds it until its lease lapses: cancel waits that
// long, as a live process renews its lease before then.
func driveAbort(ctx context.Context, e *env, a *app.App, id string) error {
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Engine.RunOwn(runCtx) }()
	defer func() { stop(); <-done }()

	r, err := a.Engine.RunByID(ctx, id)
	if err != nil {
		return fmt.Errorf("run %s: abort recorded, but the run could not be read to drive it: %w", id, err)
	}
	giveUp := r.LeaseUntil.Add(time.Second)
	for {
		run, driving, err := a.Engine.Attach(ctx, id)
		switch {
		case err != nil:
			return fmt.Errorf("run %s: abort recorded, but this process cannot take the run to drive it: %w; nocobot serve or nocobot attach %s applies it", id, err, id)
		case run.State.Finished():
			fmt.Fprintln(e.stdout, terminal.Clean(procedures.Summary(run)))
			return nil
		case driving:
			fmt.Fprintf(e.stdout, "No other process drives run %s: this one takes it and drives the abort.\n", id)
			return followAbort(ctx, e, a, id)
		case time.Now().After(giveUp):
			fmt.Fprintf(e.stdout, "Run %s is driven by the live process %s, which applies the abort once its current step ends (nocobot attach %s follows it).\n", id, terminal.CleanLine(run.Owner), id)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("run %s: abort recorded; stopped waiting for its process's lease to lapse: nocobot attach %s applies it", id, id)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// followAbort waits until the run this process drives has ended, then
// prints its summary; interrupted or out of time, it releases the run
// for nocobot attach.
func followAbort(ctx context.Context, e *env, a *app.App, id string) error {
	wctx, cancel := context.WithTimeout(ctx, abortWithin)
	defer cancel()
	for {
		r, err := a.Engine.RunByID(wctx, id)
		if err == nil && r.State.Finished() {
			fmt.Fprintln(e.stdout, terminal.Clean(procedures.Summary(r)))
			return nil
		}
		select {
		case <-wctx.Done():
			lerr := a.Engine.Leave(context.WithoutCancel(ctx), id)
			return &cmdError{code: exitLeft, err: fmt.Errorf("run %s: stopped following the abort before it ended (interrupted, or over %s): the run is released, nocobot attach %s continues it%s", id, abortWithin, id, leaveNote(lerr))}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func leaveNote(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf("; releasing it failed: %v", err)
}
