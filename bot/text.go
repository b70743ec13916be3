package bot

import (
	"fmt"
	"strings"
)

// Text is a line (or a few) for people, in spans that each transport
// renders its own way: Slack turns a Person into a mention and Code into
// code, a terminal prints them as they are.
type Text []Span

// Span is a run of text of one kind.
type Span struct {
	Kind SpanKind
	S    string
}

// SpanKind says how a span is shown.
type SpanKind int

const (
	SpanPlain  SpanKind = iota
	SpanPerson          // a user id, "terminal:alice" or "scheduler:w1"
	SpanCode            // an id, a command, a cron spec
	SpanStrong          // emphasis
)

// Person, Code and Strong mark a part of a Text built with T.
type (
	Person string
	Code   string
	Strong string
)

// T builds a Text from strings, Person, Code, Strong, Text and anything
// fmt can print.
func T(parts ...any) Text {
	var t Text
	for _, p := range parts {
		switch v := p.(type) {
		case Text:
			t = append(t, v...)
		case Person:
			t = append(t, Span{SpanPerson, string(v)})
		case Code:
			t = append(t, Span{SpanCode, string(v)})
		case Strong:
			t = append(t, Span{SpanStrong, string(v)})
		case string:
			t = append(t, Span{SpanPlain, v})
		default:
			t = append(t, Span{SpanPlain, fmt.Sprint(v)})
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
