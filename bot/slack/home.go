package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slack-go/slack"
)

// homeAttempts bounds the retries of one App Home publication: a person
// opening the tab again asks for a fresh one anyway.
const homeAttempts = 3

// publishHome shows user the App Home: each cluster's status, the run in
// progress with a link to its thread, and the next windows, from the
// dispatcher's overview (the engine's Status of every cluster).
func (f *Front) publishHome(ctx context.Context, user string) {
	if user == "" {
		return
	}
	view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: f.homeBlocks(ctx)}}
	err := f.calls.do(ctx, "views.publish", homeAttempts, func(ctx context.Context) error {
		_, err := f.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user, View: view})
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("user", user).Msg("slack: could not publish the App Home")
	}
}

func (f *Front) homeBlocks(ctx context.Context) []slack.Block {
	header := func(s string) slack.Block {
		return slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, s, false, false))
	}
	blocks := []slack.Block{
		header("NocoBase clusters"),
		contextLine("As of " + slackDate(time.Now(), "UTC") + ". Commands: `" + f.command + " help`."),
	}
	tail := fmt.Sprintf("… _(cut: `%s status` or `nocobot status` shows it all)_", f.command)
	for _, r := range f.disp.Overview(ctx) {
		blocks = append(blocks, slack.NewDividerBlock(), header(r.Cluster))
		body := r
		body.Title = ""
		blocks = append(blocks, sections(replyText(body), tail)...)
		if r.RunID != "" {
			blocks = append(blocks, contextLine(f.threadLine(ctx, r.RunID)))
		}
	}
	m, _ := message{text: "nocobot", blocks: blocks}.fitN(tail, maxHomeBlocks)
	return m.blocks
}

// threadLine links a run's thread, or says where it is.
func (f *Front) threadLine(ctx context.Context, runID string) string {
	ch, ts := f.threadOf(ctx, runID)
	if ch == "" || ts == "" {
		return fmt.Sprintf("Run `%s` has no thread in Slack yet.", runID)
	}
	if link := f.permalink(ctx, ch, ts); link != "" {
		return fmt.Sprintf(":thread: <%s|Thread of run %s> in <#%s>", link, runID, ch)
	}
	return fmt.Sprintf(":thread: Run `%s`'s thread is in <#%s>.", runID, ch)
}

// threadOf is the channel and root ts of a run's thread: the one being
// rendered here, or the one the store's note names.
func (f *Front) threadOf(ctx context.Context, runID string) (channel, ts string) {
	f.mu.Lock()
	t := f.threads[runID]
	f.mu.Unlock()
	if t != nil {
		channel, ts, _ = t.rootPosted()
		if channel != "" && channel != "-" {
			return channel, ts
		}
	}
	c, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	raw, err := f.eng.GetNote(c, noteScope, runID)
	var n threadNote
	if err != nil || json.Unmarshal([]byte(raw), &n) != nil {
		return "", ""
	}
	return n.Channel, n.Msgs["root"]
}

// permalink asks Slack for a message's link; "" when it cannot.
func (f *Front) permalink(ctx context.Context, channel, ts string) string {
	var link string
	err := f.calls.do(ctx, "chat.getPermalink", homeAttempts, func(ctx context.Context) error {
		var err error
		link, err = f.api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: channel, Ts: ts})
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("channel", channel).Msg("slack: no permalink for a thread")
		return ""
	}
	return link
}
