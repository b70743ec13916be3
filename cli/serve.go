package cli

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/demo"
	"github.com/nocobot/nocobot/internal/buildinfo"
	"github.com/nocobot/nocobot/store"
)

// The commands that run nocobot itself: serve (the bot and its windows)
// and demo (all of it on a simulated cluster).

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
	return a.Serve(ctx, buildinfo.Get().String())
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "demo", "[--auto]", "Runs nocobot's engine, store and terminal front on a simulated three-node\nNocoBase cluster in this process: upgrade, roll back, maintain, a window.")
	auto := fs.Bool("auto", false, "answer the checkpoints itself; fail unless every run ends as expected")
	if _, err := parseArgs(fs, args, false); err != nil {
		return err
	}
	log, err := g.logger(e.stderr)
	if err != nil {
		return &cmdError{code: exitUsage, err: err}
	}
	log = log.Level(max(log.GetLevel(), zerolog.WarnLevel))
	open := func(ctx context.Context, path string) (store.Store, error) {
		return app.OpenStore(ctx, &config.Config{Store: config.Store{Path: path}}, log)
	}
	return demo.Run(ctx, demo.Options{Auto: *auto, In: e.stdin, Out: e.stdout, OpenStore: open, Log: log,
		Interactive: isTerminal(e.stdin), Interrupts: e.interrupts})
}
