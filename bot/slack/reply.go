package slack

import (
	"strings"

	"github.com/nocobot/nocobot/bot"
)

// mrkdwn renders a Text in Slack's markup: people as mentions, code in
// backticks, emphasis in asterisks.
func mrkdwn(t bot.Text) string {
	var b strings.Builder
	for _, s := range t {
		switch s.Kind {
		case bot.SpanPerson:
			b.WriteString(mention(s.S))
		case bot.SpanCode:
			b.WriteString("`" + s.S + "`")
		case bot.SpanStrong:
			b.WriteString("*" + s.S + "*")
		case bot.SpanTime:
			b.WriteString(slackDate(s.At, "UTC"))
		default:
			b.WriteString(s.S)
		}
	}
	return b.String()
}

// mention turns a Slack user id into a mention; other requesters
// ("terminal:alice", "scheduler:w1") stay as they are.
func mention(id string) string {
	if len(id) > 1 && (id[0] == 'U' || id[0] == 'W') && strings.IndexFunc(id, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) < 0 {
		return "<@" + id + ">"
	}
	return id
}

// groupMention mentions a Slack user group.
func groupMention(id string) string { return "<!subteam^" + id + ">" }

// replyText renders a dispatcher reply as one mrkdwn message.
func replyText(r bot.Reply) string {
	var lines []string
	if r.Title != "" {
		lines = append(lines, "*"+r.Title+"*")
	}
	if !r.Text.Empty() {
		lines = append(lines, mrkdwn(r.Text))
	}
	for _, f := range r.Fields {
		switch {
		case len(f.List) == 0 && f.Label == "":
			lines = append(lines, mrkdwn(f.Text))
		case len(f.List) == 0:
			lines = append(lines, f.Label+": "+mrkdwn(f.Text))
		default:
			if f.Label != "" {
				lines = append(lines, f.Label+":")
			}
			for _, t := range f.List {
				lines = append(lines, "• "+mrkdwn(t))
			}
		}
	}
	return strings.Join(lines, "\n")
}
