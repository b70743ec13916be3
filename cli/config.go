package cli

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/internal/buildinfo"
)

// The commands about this nocobot: its configuration's check and its
// version.

func cmdConfig(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "config check", "[--connect]", "Validates the configuration file, its windows, secrets and channels: every problem\non a line, or OK. --connect also asks each outside system whether it answers.")
	connect := fs.Bool("connect", false, "also check that the store, Docker, the database, NocoBase, Slack and the probe URLs answer")
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "check" {
		return usageErr("expected: nocobot config check [--connect] [--config FILE]")
	}
	return app.CheckConfig(ctx, g.config, app.CheckOptions{Connect: *connect}, e.stdout, e.stderr)
}

func cmdVersion(_ context.Context, e *env, args []string) error {
	fs, _ := newFlags(e, "version", "", "Prints the version and commit.")
	if _, err := parseArgs(fs, args, false); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, buildinfo.Get())
	return nil
}
