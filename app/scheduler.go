package app

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/schedule"
	"github.com/nocobot/nocobot/store"
)

// newScheduler builds the maintenance window scheduler: windows start
// their procedure read by the command table's parser and started by the
// engine, as a typed command is. Not through the dispatcher: the access
// rules were applied when the window was added; its run is the
// scheduler's (procedures.ViaScheduler), on behalf of whoever added or
// approved it.
func newScheduler(cfg *config.Config, st store.Store, eng *procedures.Engine, bus *events.Bus, log zerolog.Logger) (*schedule.Scheduler, error) {
	return schedule.New(schedule.Options{
		Store: st, Log: log, Clock: eng.Clock(), Events: bus,
		Parse: bot.ParseProcedure, Start: eng.Start,
		MissedGrace:   cfg.Schedule.MissedGrace.D(),
		ConfigWindows: configWindows(cfg),
	})
}

// configWindows are the windows the configuration file declares.
func configWindows(cfg *config.Config) []store.Window {
	var ws []store.Window
	for _, c := range cfg.Clusters {
		for _, w := range c.Windows {
			ws = append(ws, store.Window{
				ID: w.ID, Cluster: c.Name, Spec: w.Cron, TZ: w.TZ, Command: w.Command,
				Duration: w.Duration.D(), Announce: w.Announce.D(), Approval: w.Approval == "required",
				CreatedBy: "config", FromConfig: true,
			})
		}
	}
	return ws
}

// CheckWindows checks every configured window as the scheduler will, its
// command included: one line naming the window and what is wrong.
func CheckWindows(cfg *config.Config) error {
	for _, w := range configWindows(cfg) {
		if _, err := schedule.CheckWindow(w, bot.ParseProcedure); err != nil {
			return fmt.Errorf("cluster %s, window %s: %w", w.Cluster, w.ID, err)
		}
		// A word the command language reads as a cluster name ("maintain
		// bakcup") must name one.
		if req, _ := bot.ParseProcedure(w.Command); req.Cluster != "" {
			if _, ok := cfg.Cluster(req.Cluster); !ok {
				return fmt.Errorf("cluster %s, window %s: command %q: unknown cluster %q (known: %s)", w.Cluster, w.ID, w.Command, req.Cluster, clusterNames(cfg))
			}
		}
	}
	return nil
}

func clusterNames(cfg *config.Config) string {
	names := make([]string, len(cfg.Clusters))
	for i, c := range cfg.Clusters {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}
