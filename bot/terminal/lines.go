package terminal

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// Line is one line the operator typed, or the end of input (EOF: Ctrl-D
// at a terminal, or the end of a pipe).
type Line struct {
	Text string
	EOF  bool
}

// LineReader reads lines: a *term.Terminal, or Reader's wrapper of stdin.
type LineReader interface {
	ReadLine() (string, error)
}

// Feed reads lines from r into a channel for the life of the process,
// so that one reader serves every prompt in turn. At a terminal
// (again: true) an end of input is reported and reading goes on, as a
// person may type again after Ctrl-D; otherwise the channel closes after
// the first end of input.
func Feed(r LineReader, again bool) <-chan Line {
	out := make(chan Line)
	go func() {
		defer close(out)
		for {
			s, err := r.ReadLine()
			if err == nil {
				out <- Line{Text: strings.TrimSpace(s)}
				continue
			}
			out <- Line{EOF: true}
			if !again || !errors.Is(err, io.EOF) {
				return
			}
		}
	}()
	return out
}

// Reader reads lines from a plain reader (stdin). Unlike a Scanner it
// reads on after an end of input, as a terminal allows.
type Reader struct{ r *bufio.Reader }

// NewReader wraps r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// ReadLine returns the next line without its newline; a last line
// without one is returned before io.EOF.
func (r *Reader) ReadLine() (string, error) {
	s, err := r.r.ReadString('\n')
	if err != nil && s != "" {
		return strings.TrimRight(s, "\r\n"), nil
	}
	return strings.TrimRight(s, "\r\n"), err
}
