package main

import (
	"fmt"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/schedule"
	"github.com/nocobot/nocobot/store"
)

// newScheduler builds the maintenance window scheduler: windows start
// their procedure through the same parser and engine as a typed command.
func newScheduler(e *env) (*schedule.Scheduler, error) {
	return schedule.New(schedule.Options{
		Store: e.store, Log: e.log, Clock: e.engine.Clock(), Publish: e.engine.PublishWindow,
		Parse: parseWindowCommand, Start: e.engine.Start,
		MissedGrace:   e.cfg.Schedule.MissedGrace.D(),
		ConfigWindows: configWindows(e.cfg),
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

// checkWindows checks every configured window as the scheduler will, its
// command included: one line naming the window and what is wrong.
func checkWindows(cfg *config.Config) error {
	for _, w := range configWindows(cfg) {
		if _, err := schedule.CheckWindow(w, parseWindowCommand); err != nil {
			return fmt.Errorf("cluster %s, window %s: %w", w.Cluster, w.ID, err)
		}
		// A word the command language reads as a cluster name ("maintain
		// bakcup") must name one.
		if req, _ := parseWindowCommand(w.Command); req.Cluster != "" {
			if _, ok := cfg.Cluster(req.Cluster); !ok {
				return fmt.Errorf("cluster %s, window %s: command %q: unknown cluster %q (known: %s)", w.Cluster, w.ID, w.Command, req.Cluster, clusterNames(cfg))
			}
		}
	}
	return nil
}

// parseWindowCommand reads a window's command with the procedures'
// registry, the same words a front parses.
func parseWindowCommand(command string) (procedures.Request, error) {
	return procedures.ParseCommand(command)
}
