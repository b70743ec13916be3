package slack

import (
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// Block Kit's limits, in characters. Slack refuses a message that breaks
// one with invalid_blocks, so every message is fitted before it is sent.
const (
	maxSectionText   = 3000
	maxFieldText     = 2000
	maxHeaderText    = 150
	maxButtonText    = 75
	maxButtonValue   = 2000
	maxID            = 255 // action_id, block_id
	maxBlocks        = 50  // a message
	maxHomeBlocks    = 100 // a Home tab view
	maxActions       = 25  // elements of an actions block
	maxConfirmTitle  = 100
	maxConfirmText   = 300
	maxConfirmButton = 30
	// maxFallback bounds the text fallback: Slack takes far more, but
	// notifications and screen readers show only the start.
	maxFallback = 3000
)

// message is what one chat.postMessage or chat.update sends.
type message struct {
	text   string
	blocks []slack.Block
}

func (m message) options() []slack.MsgOption {
	return []slack.MsgOption{slack.MsgOptionText(m.text, false), slack.MsgOptionBlocks(m.blocks...)}
}

// cutText returns s within n characters. When s is longer, it ends with
// tail instead of its end, and cut is true. A cut never splits a
// mention, link or date (<…>), and closes a code span it opened.
func cutText(s string, n int, tail string) (string, bool) {
	if utf8.RuneCountInString(s) <= n {
		return s, false
	}
	keep := max(n-utf8.RuneCountInString(tail)-1, 0)
	head := string([]rune(s)[:keep])
	if i := strings.LastIndexByte(head, '<'); i >= 0 && !strings.Contains(head[i:], ">") {
		head = head[:i]
	}
	if strings.Count(head, "```")%2 == 1 {
		head = strings.TrimSuffix(head, "`") + "```"
		if utf8.RuneCountInString(head)+utf8.RuneCountInString(tail) > n {
			head = string([]rune(head)[:max(n-utf8.RuneCountInString(tail)-3, 0)]) + "```"
		}
	} else if strings.Count(head, "`")%2 == 1 {
		head = string([]rune(head)[:max(utf8.RuneCountInString(head)-1, 0)]) + "`"
	}
	return head + tail, true
}

// fit makes a message fit Block Kit's limits. tail replaces the end of a
// cut text and says where the rest is; cut reports whether anything was
// cut. A message always keeps a text fallback.
func (m message) fit(tail string) (message, bool) { return m.fitN(tail, maxBlocks) }

// fitN is fit with at most n blocks (a Home tab takes more).
func (m message) fitN(tail string, n int) (message, bool) {
	cutAny := false
	cutTo := func(t *slack.TextBlockObject, n int, tl string) {
		if t == nil {
			return
		}
		var c bool
		t.Text, c = cutText(t.Text, n, tl)
		cutAny = cutAny || c
	}
	id := func(s *string) {
		if utf8.RuneCountInString(*s) > maxID {
			*s = string([]rune(*s)[:maxID])
		}
	}
	var out []slack.Block
	for _, b := range m.blocks {
		switch v := b.(type) {
		case *slack.SectionBlock:
			cutTo(v.Text, maxSectionText, tail)
			for _, f := range v.Fields {
				cutTo(f, maxFieldText, "…")
			}
			id(&v.BlockID)
		case *slack.HeaderBlock:
			cutTo(v.Text, maxHeaderText, "…")
			id(&v.BlockID)
		case *slack.ContextBlock:
			for _, e := range v.ContextElements.Elements {
				if t, ok := e.(*slack.TextBlockObject); ok {
					cutTo(t, maxSectionText, "…")
				}
			}
			id(&v.BlockID)
		case *slack.ActionBlock:
			if len(v.Elements.ElementSet) > maxActions {
				v.Elements.ElementSet = v.Elements.ElementSet[:maxActions]
				cutAny = true
			}
			for _, e := range v.Elements.ElementSet {
				if btn, ok := e.(*slack.ButtonBlockElement); ok {
					cutTo(btn.Text, maxButtonText, "…")
					id(&btn.ActionID)
					if utf8.RuneCountInString(btn.Value) > maxButtonValue {
						// A value cut is a value lost: the click would
						// mean something else. Buttons carry short ids.
						btn.Value = string([]rune(btn.Value)[:maxButtonValue])
					}
					if c := btn.Confirm; c != nil {
						cutTo(c.Title, maxConfirmTitle, "…")
						cutTo(c.Text, maxConfirmText, "…")
						cutTo(c.Confirm, maxConfirmButton, "…")
						cutTo(c.Deny, maxConfirmButton, "…")
					}
				}
			}
			id(&v.BlockID)
		}
		out = append(out, b)
	}
	if len(out) > n {
		// Keep the actions: a checkpoint without its buttons is a run
		// nobody can steer.
		var actions []slack.Block
		for _, b := range out[n-1:] {
			if _, ok := b.(*slack.ActionBlock); ok {
				actions = append(actions, b)
			}
		}
		keep := n - 1 - len(actions)
		out = append(append(out[:keep:keep], section(strings.TrimSpace(tail))), actions...)
		cutAny = true
	}
	m.blocks = out
	if strings.TrimSpace(m.text) == "" {
		for _, b := range out {
			if s, ok := b.(*slack.SectionBlock); ok && s.Text != nil {
				m.text = s.Text.Text
				break
			}
		}
	}
	if strings.TrimSpace(m.text) == "" {
		m.text = "nocobot"
	}
	m.text, _ = cutText(m.text, maxFallback, tail)
	return m, cutAny
}

// sections lays out a long text as sections of whole lines, each within
// the limit; a line longer than a section is cut with tail.
func sections(text, tail string) []slack.Block {
	var out []slack.Block
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, section(cur.String()))
			cur.Reset()
		}
	}
	for _, line := range strings.Split(text, "\n") {
		line, _ = cutText(line, maxSectionText, tail)
		if utf8.RuneCountInString(cur.String())+utf8.RuneCountInString(line)+1 > maxSectionText {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
	}
	flush()
	return out
}
