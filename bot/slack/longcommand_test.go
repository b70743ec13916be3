package slack

import (
	"strings"
	"testing"
)

// A refused command's answer quotes a short prefix of what was typed,
// however long the command: a 5,000-character command gets a short
// answer, whichever word the parser stops at.
func TestLongRefusedCommandGetsAShortAnswer(t *testing.T) {
	h := newHarness(t, "http")
	long := strings.Repeat("x", 5000)
	tests := []struct{ text, want string }{
		{"deploy" + long, `unknown command "deployxxxx`},
		{"upgrade 1.7.14 prod " + strings.Repeat("junk ", 1000), "too many arguments: junk junk"},
		{"upgrade " + long, `"xxxxxxxx`},
		{"status " + long, `unknown cluster "xxxx`},
		{"history " + long, `"xxxx`},
		{"cancel r" + long, "There is no run rxxxx"},
		{"schedule " + long, "schedule xxxx"},
		{"traffic " + long, "traffic xxxx"},
	}
	for _, tt := range tests {
		h.command(uRequest, chProd, tt.text)
		c := h.fs.ephemeralTo(uRequest, tt.want)
		if n := len(c.Text()); n > 400 {
			t.Fatalf("%.30s…: a %d-character answer to a %d-character command:\n%.500s", tt.text, n, len(tt.text), c.Text())
		}
		if n := len(c.Form.Get("blocks")); n > 1200 {
			t.Fatalf("%.30s…: %d characters of blocks", tt.text, n)
		}
	}
}
