package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// The records (history, the audit log) as tables at a terminal.

// auditCell is how long one cell of the audit table may be.
const auditCell = 120

// printRuns prints history's runs as a table.
func printRuns(e *env, runs []store.Run) error {
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

// printAudit prints audit entries as a table: control characters
// escaped, long text cut.
func printAudit(e *env, entries []store.AuditEntry) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tUSER\tVIA\tCHANNEL\tACTION\tRUN\tOUTCOME")
	cell := func(s string) string { return terminal.Cut(terminal.CleanLine(s), auditCell) }
	for _, a := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.At.Local().Format("2006-01-02 15:04:05"), cell(a.User), cell(a.Via), cell(a.Channel),
			cell(a.Action), cell(a.RunID), cell(a.Outcome))
	}
	return tw.Flush()
}

// printAuditJSON prints audit entries whole, one JSON object a line.
func printAuditJSON(e *env, entries []store.AuditEntry) error {
	for _, a := range entries {
		b, err := json.Marshal(auditJSON(a))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s\n", escapeJSON(b))
	}
	return nil
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
