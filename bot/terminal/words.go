package terminal

import (
	"context"
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// DecideUsage is how decide is typed.
const DecideUsage = "decide <run> continue|rollback|abort|retry|done"

// Decide answers a run's open question from the words "<run> <choice>",
// through the dispatcher (access-checked, audited). A mistake in the
// words is refused and audited too.
func Decide(ctx context.Context, d Dispatcher, who bot.Caller, args []string) bot.Reply {
	said := strings.TrimSpace(who.Prefix + " decide " + strings.Join(args, " "))
	if len(args) != 2 {
		return usage(ctx, d, who, said, "which run and which choice?")
	}
	action := store.Action(strings.ToLower(args[1]))
	switch action {
	case "done":
		action = store.ActionContinue
	case "roll-back":
		action = store.ActionRollback
	case store.ActionContinue, store.ActionRollback, store.ActionAbort, store.ActionRetry:
	default:
		return usage(ctx, d, who, said, fmt.Sprintf("%s: expected continue, rollback, abort, retry or done", procedures.TypedQ(args[1])))
	}
	r := d.Decide(ctx, who, bot.Answer{RunID: args[0], Action: action, Said: said})
	if r.Outcome.Kind == bot.OK && r.Decision != nil {
		r.Text = bot.T(fmt.Sprintf("Recorded: %s on run %s (%s). The process driving the run acts on it; if none does, %s attach %s drives it.",
			bot.ActionLabel(r.Decision.Action), r.Decision.RunID, r.Decision.Checkpoint, who.Prefix, r.Decision.RunID))
	}
	return r
}

// usage refuses a mistake in decide's words, audited, as a usage error.
func usage(ctx context.Context, d Dispatcher, who bot.Caller, said, msg string) bot.Reply {
	ue := &bot.UsageError{Msg: msg, Usage: who.Prefix + " " + DecideUsage}
	r := d.Refuse(ctx, who, said, ue.Error())
	r.Err = ue
	return r
}
