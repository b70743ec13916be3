package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	slackfront "github.com/nocobot/nocobot/bot/slack"
	"github.com/nocobot/nocobot/config"
)

// CheckOptions tune CheckConfig.
type CheckOptions struct {
	// Connect also asks the store, Docker, the database, NocoBase, Slack
	// and the load balancer's probe URL whether they answer.
	Connect bool
	// Timeout bounds each connection check; default 10 s.
	Timeout time.Duration
	// SlackAPIURL overrides Slack's Web API URL (tests: a local server).
	SlackAPIURL string
}

// CheckConfig is `nocobot config check`: it loads the file, checks the
// windows' commands, every secret and, while Slack is on, every
// cluster's channel, and with Connect whether each outside system
// answers (one line each on out: ok, or failed and why). Every problem
// of the file is found in one pass, those of its keys first, by line: a
// single problem is the error; several are printed to errOut, one a
// line, and the error counts them.
func CheckConfig(ctx context.Context, path string, opts CheckOptions, out, errOut io.Writer) error {
	cfg, err := config.Read(path)
	var problems []string
	if ps, ok := errors.AsType[*config.Problems](err); ok {
		problems = ps.Lines()
	} else if err != nil {
		return err
	}
	if cfg != nil {
		if err := CheckWindows(cfg); err != nil {
			problems = append(problems, path+": "+err.Error())
		}
		for _, err := range []error{cfg.CheckSecrets(), cfg.CheckFronts()} {
			if err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					problems = append(problems, path+": "+line)
				}
			}
		}
	}
	// Keys read in an older place: the file loads; say where they go.
	if cfg != nil {
		for _, w := range cfg.WarningLines(path) {
			fmt.Fprintln(errOut, w)
		}
	}
	switch len(problems) {
	case 0:
	case 1:
		return errors.New(problems[0])
	default:
		for _, p := range problems {
			fmt.Fprintln(errOut, p)
		}
		return fmt.Errorf("%s: %d problems (each on a line above)", path, len(problems))
	}
	if opts.Connect {
		if opts.Timeout <= 0 {
			opts.Timeout = 10 * time.Second
		}
		results := connectChecks(ctx, cfg, opts)
		failed, asked := 0, 0
		for _, r := range results {
			switch {
			case r.skipped:
				fmt.Fprintf(out, "%s: skipped: %s\n", r.what, r.detail)
			case r.err != nil:
				failed++
				asked++
				fmt.Fprintf(out, "%s: failed: %s\n", r.what, oneLine(r.err))
			default:
				asked++
				fmt.Fprintf(out, "%s: ok%s\n", r.what, prefixed(": ", r.detail))
			}
		}
		if failed > 0 {
			return fmt.Errorf("%s: %d of %d checks failed (each on a line above)", path, failed, asked)
		}
	}
	fmt.Fprintf(out, "%s: OK (%d clusters: %s)\n", path, len(cfg.Clusters), clusterNames(cfg))
	return nil
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// checkResult is one line of `config check --connect`.
type checkResult struct {
	what    string
	detail  string
	err     error
	skipped bool // nothing to ask (a stopped node)
}

// within runs fn with the check's timeout and names a timeout plainly.
func within(ctx context.Context, d time.Duration, fn func(ctx context.Context) (string, error)) (string, error) {
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	detail, err := fn(c)
	if err != nil && c.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("no answer within %s (%w)", d, err)
	}
	return detail, err
}

// connectChecks asks each outside system in turn; the clusters are built
// as serve builds them, with a logger that stays quiet.
func connectChecks(ctx context.Context, cfg *config.Config, opts CheckOptions) []checkResult {
	var out []checkResult
	add := func(what string, fn func(ctx context.Context) (string, error)) {
		detail, err := within(ctx, opts.Timeout, fn)
		out = append(out, checkResult{what: what, detail: detail, err: err})
	}
	add("store", func(ctx context.Context) (string, error) { return checkStore(ctx, cfg) })
	if cfg.Slack.On() {
		add("slack", func(ctx context.Context) (string, error) { return slackfront.Check(ctx, cfg, opts.SlackAPIURL) })
	}
	log := zerolog.Nop()
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		c, closeCluster, err := buildCluster(cc, nil, log, config.Secret, ownSchemas(cfg))
		if err != nil {
			out = append(out, checkResult{what: "cluster " + cc.Name, err: err})
			continue
		}
		out = append(out, clusterChecks(ctx, cc, c, opts.Timeout)...)
		_ = closeCluster()
	}
	return out
}
