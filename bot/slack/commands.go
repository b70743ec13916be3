package slack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// replyAttempts bounds retries of a reply to a person: past a minute
// the answer is stale and the audit log holds the outcome anyway.
const replyAttempts = 6

// handleCommand runs one slash command after its ack.
func (f *Front) handleCommand(ctx context.Context, sc slack.SlashCommand) {
	text := strings.TrimSpace(sc.Text)
	audit := store.AuditEntry{User: sc.UserID, Channel: sc.ChannelID, Via: "slack", Action: strings.TrimSpace(f.command + " " + text)}
	outcome := f.command1(ctx, sc, text, &audit)
	audit.Outcome = outcome
	f.audit(ctx, audit)
}

// refuse tells the user (only them) why, and returns the audit outcome.
func (f *Front) refuse(ctx context.Context, sc slack.SlashCommand, msg string) string {
	f.ephemeral(ctx, sc.ChannelID, sc.UserID, msg)
	return "refused: " + firstLine(msg)
}

func (f *Front) command1(ctx context.Context, sc slack.SlashCommand, text string, audit *store.AuditEntry) string {
	if !f.auth.channelAllowed(sc.ChannelID) {
		return f.refuse(ctx, sc, "I don't take commands in this channel. Use a channel bound to a cluster, or ask an admin to add this one to access.channels.")
	}
	cmd, err := bot.Parse(f.command, text)
	if err != nil {
		var ue *bot.UsageError
		if errors.As(err, &ue) {
			return f.refuse(ctx, sc, ue.Error())
		}
		return f.refuse(ctx, sc, err.Error())
	}
	if cmd.Name == "help" {
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, "*Commands*\n"+bot.Help(f.command))
		return "ok"
	}
	if cmd.Name == "history" {
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, f.history(ctx, cmd.N))
		return "ok"
	}
	if cmd.Name == "cancel" {
		return f.cancelRun(ctx, sc, cmd.RunID, audit)
	}
	if cmd.Name == "schedule" && cmd.Schedule.Sub != "add" {
		return f.schedule(ctx, sc, cmd, "")
	}
	cluster, err := f.clusterFor(cmd.Cluster, sc.ChannelID)
	if err != nil {
		return f.refuse(ctx, sc, err.Error()+"\nUsage: "+bot.Usage(f.command, cmd.Name))
	}
	cmd.Cluster = cluster
	switch cmd.Name {
	case "status":
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, f.status(ctx, cluster))
		return "ok"
	case "backups":
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, f.backups(ctx, cluster))
		return "ok"
	case "schedule":
		return f.schedule(ctx, sc, cmd, cluster)
	}
	if !cmd.IsProcedure() {
		return f.refuse(ctx, sc, fmt.Sprintf("%s is not something I can do here. Try %s help", cmd.Name, f.command))
	}
	if !f.auth.allowed(ctx, cluster, sc.UserID, permRun) {
		return f.refuse(ctx, sc, fmt.Sprintf("You are not allowed to run procedures on %s.", cluster))
	}
	if cmd.DryRun {
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, f.plan(ctx, sc.UserID, cmd))
		return "ok: dry run"
	}
	return f.startRun(ctx, sc, cmd, audit)
}

// clusterFor resolves the cluster a command is about: the one named, or
// the one bound to the channel, or the only one.
func (f *Front) clusterFor(named, channel string) (string, error) {
	names := f.eng.ClusterNames()
	if named != "" {
		if !slices.Contains(names, named) {
			return "", fmt.Errorf("unknown cluster %q (known: %s)", named, strings.Join(names, ", "))
		}
		return named, nil
	}
	for _, cl := range f.cfg.Clusters {
		if cl.Channel == channel && slices.Contains(names, cl.Name) {
			return cl.Name, nil
		}
	}
	if len(names) == 1 {
		return names[0], nil
	}
	return "", fmt.Errorf("which cluster? No cluster is bound to this channel (known: %s)", strings.Join(names, ", "))
}

func (f *Front) startRun(ctx context.Context, sc slack.SlashCommand, cmd bot.Command, audit *store.AuditEntry) string {
	// Remember where the command came from before Start publishes the
	// run's first event, so the renderer knows the channel at once.
	f.mu.Lock()
	f.origins[cmd.Cluster] = sc.ChannelID
	f.mu.Unlock()
	run, err := f.eng.Start(f.base, cmd.Request(sc.UserID, "slack"))
	if err != nil {
		f.mu.Lock()
		delete(f.origins, cmd.Cluster)
		f.mu.Unlock()
		var busy *procedures.BusyError
		if errors.As(err, &busy) {
			audit.RunID = busy.Run.ID
			return f.refuse(ctx, sc, fmt.Sprintf("%s is busy: run %s (%s, requested by <@%s>) is %s. Wait for it or `%s cancel %s`.",
				busy.Run.Cluster, busy.Run.ID, procedures.Title(busy.Run), busy.Run.Requester, busy.Run.State, f.command, busy.Run.ID))
		}
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, "Could not start: "+err.Error())
		return "error: " + err.Error()
	}
	audit.RunID = run.ID
	f.bindRun(run.ID, cmd.Cluster, sc.ChannelID)
	ch := f.channelForCluster(cmd.Cluster, sc.ChannelID)
	where := ""
	if ch != sc.ChannelID {
		where = fmt.Sprintf(" in <#%s>", ch)
	}
	f.ephemeral(ctx, sc.ChannelID, sc.UserID, fmt.Sprintf("Started run %s: %s. Follow it in its thread%s.", run.ID, procedures.Title(run), where))
	return "ok"
}

// channelForCluster is where a cluster's runs are rendered: its own
// channel, else the one given.
func (f *Front) channelForCluster(cluster, fallback string) string {
	if cl, ok := f.cfg.Cluster(cluster); ok && cl.Channel != "" {
		return cl.Channel
	}
	return fallback
}

func (f *Front) cancelRun(ctx context.Context, sc slack.SlashCommand, id string, audit *store.AuditEntry) string {
	audit.RunID = id
	run, err := f.eng.Store().GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return f.refuse(ctx, sc, fmt.Sprintf("There is no run %s. See `%s history`.", id, f.command))
	}
	if err != nil {
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, "Could not read the run: "+err.Error())
		return "error: " + err.Error()
	}
	if !f.auth.allowed(ctx, run.Cluster, sc.UserID, permRun) {
		return f.refuse(ctx, sc, fmt.Sprintf("You are not allowed to cancel runs on %s.", run.Cluster))
	}
	if run.State.Finished() {
		return f.refuse(ctx, sc, fmt.Sprintf("Run %s is already %s.", id, run.State))
	}
	if err := f.eng.Cancel(ctx, id, sc.UserID, "slack"); err != nil {
		f.ephemeral(ctx, sc.ChannelID, sc.UserID, "Could not cancel: "+err.Error())
		return "error: " + err.Error()
	}
	f.ephemeral(ctx, sc.ChannelID, sc.UserID, fmt.Sprintf("Abort requested for run %s: the current step ends safely, then the run stops. The thread says where the cluster stands.", id))
	return "ok"
}

// plan describes what a run would do, for --dry-run.
func (f *Front) plan(ctx context.Context, user string, cmd bot.Command) string {
	p, err := f.eng.Plan(ctx, cmd.Request(user, "slack"))
	if err != nil {
		return "Could not make a plan: " + err.Error()
	}
	return "*Dry run — nothing changes.*\n" + p
}

func (f *Front) audit(ctx context.Context, e store.AuditEntry) {
	e.At = f.now()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.eng.Store().AppendAudit(c, e); err != nil {
		f.log.Error().Err(err).Str("user", e.User).Str("action", e.Action).Msg("could not write the audit log")
	}
}

// ephemeral answers one user in a channel, visible only to them.
func (f *Front) ephemeral(ctx context.Context, channel, user, text string, blocks ...slack.Block) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	err := f.calls.do(ctx, "chat.postEphemeral", replyAttempts, func(ctx context.Context) error {
		_, err := f.api.PostEphemeralContext(ctx, channel, user, opts...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("channel", channel).Str("user", user).Msg("could not send an ephemeral reply")
	}
}

// say posts a message in a channel for everyone.
func (f *Front) say(ctx context.Context, channel, text string, blocks ...slack.Block) (string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	var ts string
	err := f.calls.do(ctx, "chat.postMessage", replyAttempts, func(ctx context.Context) error {
		var err error
		_, ts, err = f.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("channel", channel).Msg("could not post a message")
	}
	return ts, err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
