package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// auditCell is how long one cell of the audit table may be.
const auditCell = 120

// records opens only the store (no clusters, no secrets besides the
// store's own) and audits the command.
func records(ctx context.Context, e *env, g *globals, said string) (store.Store, error) {
	cfg, log, err := load(g, e.stderr)
	if err != nil {
		return nil, err
	}
	st, err := app.OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	who := operator(cfg)
	if err := st.AppendAudit(ctx, store.AuditEntry{At: time.Now(), User: who.User, Via: bot.ViaTerminal, Action: said, Outcome: "ok"}); err != nil {
		log.Error().Err(err).Msg("could not write the audit log")
	}
	return st, nil
}

func cmdHistory(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "history", "[n] [--cluster name] [--json]", "Lists past runs, newest first, with outcome and duration.")
	cluster := fs.String("cluster", "", "only this `cluster`")
	asJSON := fs.Bool("json", false, "a JSON array of runs (keys: docs/cli.md)")
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	n := 20
	if len(pos) > 1 {
		return usageErr("too many arguments")
	}
	if len(pos) == 1 {
		if _, err := fmt.Sscan(pos[0], &n); err != nil || n < 1 {
			return usageErr("%q: expected a number of runs", pos[0])
		}
	}
	st, err := records(ctx, e, g, strings.TrimSpace("nocobot history "+strings.Join(pos, " ")))
	if err != nil {
		return err
	}
	defer st.Close()
	runs, err := st.ListRuns(ctx, *cluster, n)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]jsonRun, 0, len(runs))
		for _, r := range runs {
			out = append(out, runJSON(r, time.Now()))
		}
		return writeJSON(e.stdout, out)
	}
	if len(runs) == 0 {
		fmt.Fprintln(e.stdout, "No runs yet.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tWHAT\tREQUESTER\tOUTCOME\tDURATION\tDOWNTIME")
	for _, r := range runs {
		down := "-"
		if d, ok := procedures.Downtime(r); ok {
			down = format.Duration(d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Created.Local().Format("2006-01-02 15:04"), terminal.CleanLine(procedures.Title(r)),
			terminal.CleanLine(r.Requester), bot.OutcomeWords(r.State), format.Duration(procedures.Duration(r, time.Now())), down)
	}
	return tw.Flush()
}

func cmdAudit(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "audit", "[--since 1d] [--run id] [-n 50] [--json]", "Prints the audit log, newest first: every command, decision and refusal with\nits outcome, run, front and user. Control characters are shown escaped and long\ntext is cut (--json keeps it whole, one object a line).")
	since := durationVar(fs, "since", "only entries this recent: a `duration` such as 24h, 1d or 2w")
	runID := fs.String("run", "", "only entries about this `run`")
	n := fs.Int("n", 50, "at most this `many` entries")
	asJSON := fs.Bool("json", false, "one JSON object a line (keys: docs/cli.md)")
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected %q", pos[0])
	}
	said := "nocobot audit"
	if *runID != "" {
		said += " --run " + *runID
	}
	st, err := records(ctx, e, g, said)
	if err != nil {
		return err
	}
	defer st.Close()
	q := store.AuditQuery{RunID: *runID, Limit: *n}
	if *since > 0 {
		q.Since = time.Now().Add(-*since)
	}
	entries, err := st.Audit(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		for _, a := range entries {
			b, err := json.Marshal(auditJSON(a))
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s\n", escapeJSON(b))
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tUSER\tVIA\tCHANNEL\tACTION\tRUN\tOUTCOME")
	cell := func(s string) string { return terminal.Cut(terminal.CleanLine(s), auditCell) }
	for _, a := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.At.Local().Format("2006-01-02 15:04:05"), cell(a.User), cell(a.Via), cell(a.Channel),
			cell(a.Action), cell(a.RunID), cell(a.Outcome))
	}
	return tw.Flush()
}

// escapeJSON escapes what encoding/json leaves raw but a terminal may
// act on: DEL and the C1 controls.
func escapeJSON(b []byte) []byte {
	var out bytes.Buffer
	for _, r := range string(b) {
		if r == 0x7f || (r >= 0x80 && r < 0xa0) {
			fmt.Fprintf(&out, `\u%04x`, r)
			continue
		}
		out.WriteRune(r)
	}
	return out.Bytes()
}
