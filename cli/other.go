package cli

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/config"
)

func cmdConfig(_ context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "config check", "", "Validates the configuration file: one clear error naming the field, or OK.")
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "check" {
		return usageErr("expected: nocobot config check [--config FILE]")
	}
	cfg, err := config.Load(g.config)
	if err != nil {
		return err
	}
	if err := app.CheckWindows(cfg); err != nil {
		return fmt.Errorf("%s: %w", g.config, err)
	}
	names := make([]string, len(cfg.Clusters))
	for i, c := range cfg.Clusters {
		names[i] = c.Name
	}
	fmt.Fprintf(e.stdout, "%s: OK (%d clusters: %s)\n", g.config, len(cfg.Clusters), strings.Join(names, ", "))
	return nil
}

func cmdVersion(_ context.Context, e *env, args []string) error {
	fs, _ := newFlags(e, "version", "", "Prints the version.")
	if _, err := parseArgs(fs, args, false); err != nil {
		return err
	}
	v := e.version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(e.stdout, "nocobot %s\n", v)
	return nil
}

func cmdServe(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "serve", "", "Runs the Slack bot: Socket Mode or HTTP per the configuration,\nresumes unfinished runs, and keeps the maintenance windows.")
	g.defaultLevel = "info"
	if _, err := parseArgs(fs, args, false); err != nil {
		return err
	}
	a, err := setup(ctx, g, e)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx, e.version)
}
