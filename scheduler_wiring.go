package main

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// newScheduler builds the maintenance window scheduler: windows start
// their procedure through the same parser and engine as a typed command.
func newScheduler(e *env) (*procedures.Scheduler, error) {
	var fromConfig []store.Window
	for _, c := range e.cfg.Clusters {
		for _, w := range c.Windows {
			fromConfig = append(fromConfig, store.Window{
				ID: w.ID, Cluster: c.Name, Spec: w.Cron, TZ: w.TZ, Command: w.Command,
				Duration: w.Duration.D(), Announce: w.Announce.D(), Approval: w.Approval == "required",
				CreatedBy: "config", FromConfig: true,
			})
		}
	}
	return procedures.NewScheduler(procedures.SchedulerOptions{
		Store: e.store, Log: e.log, Clock: e.engine.Clock(), Publish: e.engine.PublishWindow,
		StartRun:      func(ctx context.Context, w store.Window) (store.Run, error) { return startWindow(ctx, e.engine, w) },
		MissedGrace:   e.cfg.Schedule.MissedGrace.D(),
		ConfigWindows: fromConfig,
	})
}

func startWindow(ctx context.Context, eng *procedures.Engine, w store.Window) (store.Run, error) {
	req, err := procedures.ParseCommand(w.Command)
	if err != nil {
		return store.Run{}, fmt.Errorf("window %s: %w", w.ID, err)
	}
	if req.Cluster == "" {
		req.Cluster = w.Cluster
	}
	req.Requester, req.Via = "scheduler:"+w.ID, "scheduler"
	return eng.Start(ctx, req)
}
