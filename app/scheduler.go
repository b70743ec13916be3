package app

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// newScheduler builds the maintenance window scheduler: windows start
// their procedure through the same parser and engine as a typed command.
func newScheduler(cfg *config.Config, st store.Store, eng *procedures.Engine, log zerolog.Logger) (*procedures.Scheduler, error) {
	var fromConfig []store.Window
	for _, c := range cfg.Clusters {
		for _, w := range c.Windows {
			fromConfig = append(fromConfig, store.Window{
				ID: w.ID, Cluster: c.Name, Spec: w.Cron, TZ: w.TZ, Command: w.Command,
				Duration: w.Duration.D(), Announce: w.Announce.D(), Approval: w.Approval == "required",
				CreatedBy: "config", FromConfig: true,
			})
		}
	}
	return procedures.NewScheduler(procedures.SchedulerOptions{
		Store: st, Log: log, Clock: eng.Clock(), Publish: eng.PublishWindow,
		StartRun:      func(ctx context.Context, w store.Window) (store.Run, error) { return startWindow(ctx, eng, w) },
		MissedGrace:   cfg.Schedule.MissedGrace.D(),
		ConfigWindows: fromConfig,
	})
}

func startWindow(ctx context.Context, eng *procedures.Engine, w store.Window) (store.Run, error) {
	cmd, err := bot.Parse("schedule", w.Command)
	if err != nil {
		return store.Run{}, fmt.Errorf("window %s: %w", w.ID, err)
	}
	if !cmd.IsProcedure() {
		return store.Run{}, fmt.Errorf("window %s: %q is not a procedure", w.ID, w.Command)
	}
	if cmd.Cluster == "" {
		cmd.Cluster = w.Cluster
	}
	return eng.Start(ctx, cmd.Request("scheduler:"+w.ID, bot.ViaScheduler))
}
