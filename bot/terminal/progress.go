package terminal

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress prints a step's progress lines at most once per interval:
// lines that come closer together are joined into the next one printed,
// never dropped.
type progress struct {
	out     io.Writer
	every   time.Duration
	pending []string
	step    int
	elapsed string
	last    time.Time // when a progress line was printed last
}

// add takes a progress message of step; it prints at once when the last
// line is older than the interval, else keeps it for flush.
func (p *progress) add(now time.Time, step int, msg, elapsed string) {
	if len(p.pending) > 0 && p.step != step {
		p.flush(now)
	}
	p.step, p.elapsed = step, elapsed
	p.pending = append(p.pending, msg)
	if now.Sub(p.last) >= p.every {
		p.flush(now)
	}
}

// due prints what waits once the interval has passed.
func (p *progress) due(now time.Time) {
	if len(p.pending) > 0 && now.Sub(p.last) >= p.every {
		p.flush(now)
	}
}

// flush prints what waits, now (before a step's end or a question).
func (p *progress) flush(now time.Time) {
	if len(p.pending) == 0 {
		return
	}
	fmt.Fprintf(p.out, "      … %s (%s)\n", Clean(strings.Join(p.pending, "; ")), p.elapsed)
	p.pending = p.pending[:0]
	p.last = now
}
