package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/schedule"
	"github.com/nocobot/nocobot/store"
)

// handleInteraction handles a button click after its ack.
func (f *Front) handleInteraction(ctx context.Context, cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		f.log.Debug().Str("type", string(cb.Type)).Str("user", cb.User.ID).Msg("slack: ignored an interaction that is not a block action")
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		audit := store.AuditEntry{User: cb.User.ID, Channel: cb.Channel.ID, Via: "slack"}
		var outcome string
		switch {
		case strings.HasPrefix(a.ActionID, actionPrefixCP):
			outcome = f.checkpointClick(ctx, cb, store.Action(strings.TrimPrefix(a.ActionID, actionPrefixCP)), a.Value, &audit)
		case a.ActionID == actionWindowSkip || a.ActionID == actionWindowStart:
			outcome = f.windowClick(ctx, cb, a.ActionID, a.Value, &audit)
		default:
			audit.Action = "button " + a.ActionID
			outcome = f.refuseClick(ctx, cb, "I don't know that button.")
		}
		audit.Outcome = outcome
		f.audit(ctx, audit)
	}
}

func (f *Front) refuseClick(ctx context.Context, cb slack.InteractionCallback, msg string) string {
	f.ephemeral(ctx, cb.Channel.ID, cb.User.ID, msg)
	return "refused: " + msg
}

func (f *Front) checkpointClick(ctx context.Context, cb slack.InteractionCallback, action store.Action, value string, audit *store.AuditEntry) string {
	runID, cpID, ok := parseCPValue(value)
	audit.Action = fmt.Sprintf("button %s run %s checkpoint %s", action, runID, cpID)
	audit.RunID = runID
	if !ok {
		return f.refuseClick(ctx, cb, "That button carries no run; it is not one of mine.")
	}
	if !f.auth.channelAllowed(cb.Channel.ID) {
		return f.refuseClick(ctx, cb, "I don't take decisions in this channel.")
	}
	run, err := f.eng.Store().GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return f.refuseClick(ctx, cb, fmt.Sprintf("There is no run %s.", runID))
	}
	if err != nil {
		f.ephemeral(ctx, cb.Channel.ID, cb.User.ID, "Could not read the run; try again in a moment: "+err.Error())
		return "error: " + err.Error()
	}
	if !f.auth.allowed(ctx, run.Cluster, cb.User.ID, permDecide) {
		return f.refuseClick(ctx, cb, fmt.Sprintf("Sorry, you are not allowed to decide checkpoints on %s.", run.Cluster))
	}
	if run.State.Finished() {
		return f.refuseClick(ctx, cb, fmt.Sprintf("Run %s has already finished (%s); nothing to decide.", runID, run.State))
	}
	if run.Checkpoint == nil || run.Checkpoint.ID != cpID {
		return f.refuseClick(ctx, cb, f.alreadyDecided(ctx, runID, cpID))
	}
	if action == store.ActionContinue && f.auth.access(run.Cluster).FourEyes && cb.User.ID == run.Requester {
		return f.refuseClick(ctx, cb, "Four-eyes rule: you requested this run, so someone else must approve it. You may still roll back or abort.")
	}
	// Two quick clicks: the second waits for nothing and is told so; the
	// store decides once in any case.
	key := runID + "|" + cpID
	f.mu.Lock()
	busy := f.clicks[key]
	f.clicks[key] = true
	f.mu.Unlock()
	if busy {
		return f.refuseClick(ctx, cb, "This checkpoint is already being decided (another click came first).")
	}
	defer func() {
		f.mu.Lock()
		delete(f.clicks, key)
		f.mu.Unlock()
	}()
	d := store.Decision{RunID: runID, Checkpoint: cpID, Action: action, By: cb.User.ID, ByName: cb.User.Name, Via: "slack", At: f.now()}
	got, err := f.eng.Decide(ctx, d)
	if errors.Is(err, store.ErrAlreadyDecided) {
		return f.refuseClick(ctx, cb, f.alreadyDecided(ctx, runID, cpID))
	}
	if err != nil {
		f.ephemeral(ctx, cb.Channel.ID, cb.User.ID, "Could not record your decision: "+err.Error())
		return "error: " + err.Error()
	}
	// Show the decision now; the engine's own event follows when it acts.
	f.mu.Lock()
	t := f.threads[runID]
	f.mu.Unlock()
	if t != nil {
		t.decided(got)
	}
	return "ok: " + string(action)
}

func (f *Front) alreadyDecided(ctx context.Context, runID, cpID string) string {
	ds, err := f.eng.Store().Decisions(ctx, runID)
	if err == nil {
		for _, d := range ds {
			if d.Checkpoint == cpID {
				return fmt.Sprintf("This checkpoint was already decided: <@%s> chose %s at %s.", d.By, actionLabels[d.Action], d.At.UTC().Format("15:04:05 UTC"))
			}
		}
	}
	return "This checkpoint is no longer open."
}

func (f *Front) windowClick(ctx context.Context, cb slack.InteractionCallback, actionID, value string, audit *store.AuditEntry) string {
	id, start, ok := parseWindowValue(value)
	verb := "skip"
	if actionID == actionWindowStart {
		verb = "start"
	}
	audit.Action = fmt.Sprintf("button window %s %s at %s", verb, id, start.UTC().Format(time.RFC3339))
	if !ok {
		return f.refuseClick(ctx, cb, "That button carries no window; it is not one of mine.")
	}
	if f.sched == nil {
		return f.refuseClick(ctx, cb, "Scheduling is off: this bot runs without the maintenance window scheduler.")
	}
	if !f.auth.channelAllowed(cb.Channel.ID) {
		return f.refuseClick(ctx, cb, "I don't take decisions in this channel.")
	}
	w, err := f.eng.Store().GetWindow(ctx, id)
	if err != nil {
		return f.refuseClick(ctx, cb, fmt.Sprintf("There is no window %s any more.", id))
	}
	if !f.auth.allowed(ctx, w.Cluster, cb.User.ID, permRun) {
		return f.refuseClick(ctx, cb, fmt.Sprintf("Sorry, you are not allowed to run procedures on %s.", w.Cluster))
	}
	if verb == "skip" {
		err = f.sched.Skip(ctx, id, start, cb.User.ID)
	} else {
		err = f.sched.Approve(ctx, id, start, cb.User.ID)
	}
	if err != nil {
		return f.refuseClick(ctx, cb, fmt.Sprintf("Could not %s window %s: %v", verb, id, err))
	}
	past := map[string]string{"skip": "Skipped", "start": "Started"}[verb]
	line := fmt.Sprintf("%s by <@%s> at %s", past, cb.User.ID, f.now().UTC().Format("15:04:05 UTC"))
	text, blocks := renderWindow(w, start, "", line)
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	if ts != "" {
		err := f.calls.do(ctx, "chat.update", replyAttempts, func(ctx context.Context) error {
			_, _, _, err := f.api.UpdateMessageContext(ctx, cb.Channel.ID, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
			return err
		})
		if err != nil {
			f.log.Warn().Err(err).Msg("slack: could not update the window message")
		}
	}
	return "ok: " + verb
}

// windowEvent posts a maintenance window event in the cluster's channel.
// Announced gets a Skip button, approval a Start button; the others
// (started, skipped, missed, overrun) are plain messages.
func (f *Front) windowEvent(ctx context.Context, ev procedures.Event) {
	w := ev.Window.Window
	ch := f.channelForCluster(w.Cluster, "")
	if ch == "" && len(f.cfg.Access.Channels) > 0 {
		ch = f.cfg.Access.Channels[0]
	}
	if ch == "" {
		f.log.Warn().Str("window", w.ID).Msg("slack: no channel for a window event")
		return
	}
	button := ""
	switch ev.Kind {
	case procedures.EventWindowAnnounced:
		button = actionWindowSkip
	case procedures.EventWindowApproval:
		button = actionWindowStart
	}
	text, blocks := renderWindow(w, ev.Window.Start, button, schedule.Text(ev, schedule.Format{Who: mention, When: fmtTime}))
	opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)}
	err := f.calls.do(ctx, "chat.postMessage", 20, func(ctx context.Context) error {
		_, _, err := f.api.PostMessageContext(ctx, ch, opts...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("window", w.ID).Msg("slack: could not post a window event")
	}
}

// mention turns a Slack user id into a mention; other people
// ("terminal:alice") stay as they are.
func mention(id string) string {
	if len(id) > 1 && (id[0] == 'U' || id[0] == 'W') && strings.IndexFunc(id, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) < 0 {
		return "<@" + id + ">"
	}
	return id
}

// renderWindow shows a window event; button is the action offered (or
// none), line what happened.
func renderWindow(w store.Window, start time.Time, button, line string) (string, []slack.Block) {
	head := fmt.Sprintf(":calendar: *Maintenance window %s* on %s: %s", w.ID, w.Cluster, w.Command)
	if !start.IsZero() {
		head += " — " + fmtTime(start, w.TZ)
	}
	text := head
	if line != "" {
		text += "\n" + line
	}
	blocks := []slack.Block{section(text)}
	if button != "" {
		label, style := "Skip this one", slack.StyleDanger
		if button == actionWindowStart {
			label, style = "Start", slack.StylePrimary
		}
		b := slack.NewButtonBlockElement(button, fmt.Sprintf("%s|%d", w.ID, start.Unix()),
			slack.NewTextBlockObject(slack.PlainTextType, label, false, false)).WithStyle(style)
		blocks = append(blocks, slack.NewActionBlock(blockWindowActions, b))
	}
	return text, blocks
}
