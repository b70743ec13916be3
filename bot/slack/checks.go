package slack

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
)

// checkCommand is what both transports require of a slash command
// before anything is done or audited: a user, a channel, and the
// command this bot is configured for.
func (f *Front) checkCommand(sc slack.SlashCommand) error {
	switch {
	case sc.UserID == "":
		return errors.New("slash command without user_id")
	case sc.ChannelID == "":
		return errors.New("slash command without channel_id")
	case sc.Command != f.command:
		return fmt.Errorf("slash command %q is not this bot's %s", sc.Command, f.command)
	}
	return nil
}

// checkInteraction is what both transports require of a click.
func (f *Front) checkInteraction(cb slack.InteractionCallback) error {
	switch {
	case cb.User.ID == "":
		return errors.New("interaction without user")
	case cb.Type == slack.InteractionTypeBlockActions && cb.Channel.ID == "":
		return errors.New("block action without channel")
	}
	return nil
}

// handleEvent reacts to the Events API: an invitation of the bot posts
// the threads its channel refused; opening the App Home shows it.
func (f *Front) handleEvent(ctx context.Context, ev slackevents.EventsAPIEvent) {
	if ev.Type != slackevents.CallbackEvent {
		return
	}
	switch e := ev.InnerEvent.Data.(type) {
	case *slackevents.MemberJoinedChannelEvent:
		if me := f.botUser.Load(); me == "" || e.User == me {
			f.log.Info().Str("channel", e.Channel).Msg("slack: invited to a channel; posting the threads it refused")
			f.invited(e.Channel)
		}
	case *slackevents.AppHomeOpenedEvent:
		if e.Tab == "" || e.Tab == "home" {
			f.publishHome(ctx, e.User)
		}
	}
}

// invited tries the threads parked on channel again.
func (f *Front) invited(channel string) {
	f.mu.Lock()
	ts := make([]*thread, 0, len(f.threads))
	for _, t := range f.threads {
		ts = append(ts, t)
	}
	f.mu.Unlock()
	for _, t := range ts {
		t.unpark(channel)
	}
}
