package slack

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// blockKitViolations checks a message (or a Home view: view true) the
// way Slack does, against Block Kit's documented limits, and returns
// what breaks them. It reads the raw JSON, not the bot's types, so it
// checks what went over the wire.
func blockKitViolations(text, blocksJSON string, view bool) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	n := utf8.RuneCountInString
	if !view && strings.TrimSpace(text) == "" {
		bad("no text fallback")
	}
	if blocksJSON == "" {
		return out
	}
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(blocksJSON), &blocks); err != nil {
		bad("blocks are not a JSON array: %v", err)
		return out
	}
	maxB := 50
	if view {
		maxB = 100
	}
	if len(blocks) > maxB {
		bad("%d blocks (at most %d)", len(blocks), maxB)
	}
	textOf := func(v any) string {
		m, _ := v.(map[string]any)
		s, _ := m["text"].(string)
		return s
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	for i, b := range blocks {
		if id := str(b, "block_id"); n(id) > 255 {
			bad("block %d: block_id of %d characters", i, n(id))
		}
		switch b["type"] {
		case "section":
			t := textOf(b["text"])
			if l := n(t); l > 3000 {
				bad("block %d: section text of %d characters (at most 3000)", i, l)
			}
			fields, _ := b["fields"].([]any)
			if len(fields) > 10 {
				bad("block %d: %d fields", i, len(fields))
			}
			for _, f := range fields {
				if l := n(textOf(f)); l > 2000 {
					bad("block %d: field of %d characters", i, l)
				}
			}
			if t == "" && len(fields) == 0 {
				bad("block %d: empty section", i)
			}
		case "header":
			if l := n(textOf(b["text"])); l > 150 {
				bad("block %d: header of %d characters (at most 150)", i, l)
			}
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) > 10 {
				bad("block %d: %d context elements", i, len(els))
			}
			for _, e := range els {
				if l := n(textOf(e)); l > 3000 {
					bad("block %d: context text of %d characters", i, l)
				}
			}
		case "actions":
			els, _ := b["elements"].([]any)
			if len(els) > 25 {
				bad("block %d: %d elements in an actions block (at most 25)", i, len(els))
			}
			for _, e := range els {
				m, _ := e.(map[string]any)
				if l := n(textOf(m["text"])); l > 75 {
					bad("block %d: button text of %d characters (at most 75)", i, l)
				}
				if l := n(str(m, "value")); l > 2000 {
					bad("block %d: button value of %d characters (at most 2000)", i, l)
				}
				if l := n(str(m, "action_id")); l > 255 {
					bad("block %d: action_id of %d characters", i, l)
				}
				if c, ok := m["confirm"].(map[string]any); ok {
					for k, lim := range map[string]int{"title": 100, "text": 300, "confirm": 30, "deny": 30} {
						if l := n(textOf(c[k])); l > lim || (k != "deny" && l == 0) {
							bad("block %d: confirm %s of %d characters (1 to %d)", i, k, l, lim)
						}
					}
				}
			}
		case "divider":
		default:
			bad("block %d: unexpected type %v", i, b["type"])
		}
	}
	return out
}

func TestBlockKitChecker(t *testing.T) {
	long := strings.Repeat("x", 3001)
	tests := []struct {
		name, text, blocks string
		view               bool
		want               string
	}{
		{"fits", "hi", `[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]`, false, ""},
		{"no fallback", "", `[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]`, false, "no text fallback"},
		{"long section", "hi", `[{"type":"section","text":{"type":"mrkdwn","text":"` + long + `"}}]`, false, "section text of 3001"},
		{"long header", "hi", `[{"type":"header","text":{"type":"plain_text","text":"` + long[:151] + `"}}]`, false, "header of 151"},
		{"long button", "hi", `[{"type":"actions","elements":[{"type":"button","action_id":"a","value":"v","text":{"type":"plain_text","text":"` + long[:76] + `"}}]}]`, false, "button text of 76"},
		{"51 blocks", "hi", "[" + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 51), ",") + "]", false, "51 blocks"},
		{"a view takes 100", "", "[" + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 51), ",") + "]", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(blockKitViolations(tt.text, tt.blocks, tt.view), "; ")
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("violations %q, want %q", got, tt.want)
			}
		})
	}
}
