package terminal

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

// screen is where the front prints. At a terminal (and without NO_COLOR
// or TERM=dumb) it colours marks and keeps a live area at the bottom:
// one line per running step, redrawn in place. Elsewhere it passes plain
// lines through untouched, with no escape codes.
//
// The renderer is a few ANSI sequences, understood by every terminal in
// use (ECMA-48): SGR for colour, CUU ("ESC[nA") to go back to the top of
// the live area and ED ("ESC[J") to erase it. A library (fatih/color, a
// TUI framework) would add a dependency for these three sequences.
type screen struct {
	out   io.Writer
	live  bool       // a terminal: colours and the live area
	width func() int // the terminal's columns
	drawn int        // lines of the live area now on the screen
}

// newScreen looks at out: a terminal gets colours and live lines, unless
// NO_COLOR (https://no-color.org) is set or TERM says the terminal is dumb.
func newScreen(out io.Writer) *screen {
	s := &screen{out: out, width: func() int { return 80 }}
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return s
	}
	fd := int(f.Fd())
	s.live = true
	s.width = func() int {
		if w, _, err := term.GetSize(fd); err == nil && w > 0 {
			return w
		}
		return 80
	}
	return s
}

// Write prints lasting text: the live area is erased first, and drawn
// again at the next draw.
func (s *screen) Write(p []byte) (int, error) {
	s.erase()
	return s.out.Write(p)
}

// erase removes the live area; the cursor goes back where it began.
func (s *screen) erase() {
	if s.drawn > 0 {
		fmt.Fprintf(s.out, "\x1b[%dA\r\x1b[J", s.drawn)
		s.drawn = 0
	}
}

// draw replaces the live area with lines, each cut to the terminal's
// width so that none wraps (a wrapped line would leave the count of
// lines to go back up wrong).
func (s *screen) draw(lines []string) {
	if !s.live {
		return
	}
	s.erase()
	w := s.width() - 1
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(fit(l, w))
		b.WriteString("\x1b[0m\n")
	}
	io.WriteString(s.out, b.String())
	s.drawn = len(lines)
}

// fit cuts l to n visible characters, not counting SGR sequences.
func fit(l string, n int) string {
	if utf8.RuneCountInString(stripSGR(l)) <= n {
		return l
	}
	var b strings.Builder
	seen := 0
	for i := 0; i < len(l); {
		if l[i] == '\x1b' {
			if j := strings.IndexByte(l[i:], 'm'); j >= 0 {
				b.WriteString(l[i : i+j+1])
				i += j + 1
				continue
			}
		}
		if seen == n-1 {
			b.WriteRune('…')
			break
		}
		r, w := utf8.DecodeRuneInString(l[i:])
		b.WriteRune(r)
		seen++
		i += w
	}
	return b.String()
}

// stripSGR is s without its SGR sequences.
func stripSGR(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\x1b' {
			if j := strings.IndexByte(s[i:], 'm'); j >= 0 {
				i += j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// SGR colours.
const (
	bold   = "1"
	dim    = "2"
	red    = "31"
	green  = "32"
	yellow = "33"
	cyan   = "36"
)

// paint colours text at a terminal; elsewhere text is left as it is.
func (s *screen) paint(code, text string) string {
	if !s.live || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}
