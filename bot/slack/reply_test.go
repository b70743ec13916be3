package slack

import (
	"testing"

	"github.com/nocobot/nocobot/bot"
)

func TestReplyRendering(t *testing.T) {
	r := bot.Reply{
		Title: "Status of prod",
		Fields: []bot.Field{
			{Label: "Nodes", List: []bot.Text{bot.NewText("app-1: running, ", bot.Code("nocobase/nocobase:1.7.13"))}},
			{Label: "Running", Text: bot.NewText("r1 — upgrade (", bot.Person("U123ABC"), "), waiting")},
			{Label: "Last", Text: bot.NewText("by ", bot.Person("terminal:alice"), " and ", bot.Person("scheduler:w1"), ", ", bot.Strong("twice"))},
		},
	}
	want := "*Status of prod*\nNodes:\n• app-1: running, `nocobase/nocobase:1.7.13`\nRunning: r1 — upgrade (<@U123ABC>), waiting\nLast: by terminal:alice and scheduler:w1, *twice*"
	if got := replyText(r); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	wantPlain := "Status of prod\nNodes:\n  - app-1: running, nocobase/nocobase:1.7.13\nRunning: r1 — upgrade (U123ABC), waiting\nLast: by terminal:alice and scheduler:w1, twice"
	if got := r.Plain(); got != wantPlain {
		t.Fatalf("plain:\n%s\nwant:\n%s", got, wantPlain)
	}
}
