package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/format"
)

// Text is a line (or a few) for people, in spans that each transport
// renders its own way: Slack turns a Person into a mention and Code into
// code, a terminal prints them as they are.
type Text []Span

// Span is a run of text of one kind.
type Span struct {
	Kind SpanKind
	S    string
	// At is the moment of a SpanTime; S is how it reads in plain text.
	At time.Time
}

// SpanKind says how a span is shown.
type SpanKind int

const (
	SpanPlain  SpanKind = iota
	SpanPerson          // a user id, "terminal:alice" or "scheduler:w1"
	SpanCode            // an id, a command, a cron spec
	SpanStrong          // emphasis
	SpanTime            // a moment: Slack shows it in each reader's time zone
)

// Person, Code and Strong mark a part of a Text built with NewText.
type (
	Person string
	Code   string
	Strong string
	// Moment is a moment, shown in UTC as plain text.
	Moment time.Time
)

// Local is a moment shown as plain text in a time zone (a window's
// own); Slack still shows it in each reader's.
type Local struct {
	At time.Time
	TZ string
}

// NewText builds a Text from strings, Person, Code, Strong, Moment, Local, Text and anything
// fmt can print.
func NewText(parts ...any) Text {
	var t Text
	for _, p := range parts {
		switch v := p.(type) {
		case Text:
			t = append(t, v...)
		case Person:
			t = append(t, Span{Kind: SpanPerson, S: string(v)})
		case Code:
			t = append(t, Span{Kind: SpanCode, S: string(v)})
		case Strong:
			t = append(t, Span{Kind: SpanStrong, S: string(v)})
		case Moment:
			tm := time.Time(v)
			t = append(t, Span{Kind: SpanTime, S: tm.UTC().Format("15:04:05 UTC"), At: tm})
		case Local:
			t = append(t, Span{Kind: SpanTime, S: format.When(v.At, v.TZ), At: v.At})
		case string:
			t = append(t, Span{Kind: SpanPlain, S: v})
		default:
			t = append(t, Span{Kind: SpanPlain, S: fmt.Sprint(v)})
		}
	}
	return t
}

// Plain is the text without marks, as a terminal or the audit log shows it.
func (t Text) Plain() string {
	var b strings.Builder
	for _, s := range t {
		b.WriteString(s.S)
	}
	return b.String()
}

// Empty reports whether there is nothing to show.
func (t Text) Empty() bool { return t.Plain() == "" }
