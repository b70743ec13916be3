package terminal

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Clean makes text from elsewhere (typed into Slack, read from a
// container) safe to print on an operator's terminal: control characters
// such as ESC, BEL and NUL, and the C1 controls, are shown as \x1b-style
// escapes instead of acting on the terminal. Newlines and tabs stay.
func Clean(s string) string { return clean(s, true) }

// CleanLine is Clean for one cell of a table or log line: a newline is
// shown as \n too.
func CleanLine(s string) string { return clean(s, false) }

func clean(s string, keepNewlines bool) string {
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, n := utf8.DecodeRuneInString(s[i:])
		w = n
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' && keepNewlines, r == '\t':
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			if r <= 0xff {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Cut shortens s to at most n characters, saying how much it left out.
func Cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	rest := len(rs) - n
	return string(rs[:n]) + fmt.Sprintf("… (%d more characters)", rest)
}
