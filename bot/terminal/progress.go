package terminal

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// progress prints steps' progress as plain lines (output that is not a
// terminal, or NO_COLOR): one message a line, at most one line per step
// per interval. A message that comes sooner waits, and a newer one
// replaces it, so what is printed is always the step's latest.
type progress struct {
	out   io.Writer
	every time.Duration
	steps map[int]*stepProgress
}

type stepProgress struct {
	num, msg, elapsed string
	pending           bool
	printed           time.Time // when this step's last line was printed
}

// add takes step's latest message; it prints at once when the step's
// last line is older than the interval.
func (p *progress) add(now time.Time, step int, num, msg, elapsed string) {
	if p.steps == nil {
		p.steps = map[int]*stepProgress{}
	}
	sp := p.steps[step]
	if sp == nil {
		sp = &stepProgress{}
		p.steps[step] = sp
	}
	sp.num, sp.msg, sp.elapsed, sp.pending = num, msg, elapsed, true
	if now.Sub(sp.printed) >= p.every {
		p.print(now, sp)
	}
}

// due prints the waiting messages whose interval has passed.
func (p *progress) due(now time.Time) {
	for _, k := range p.order() {
		if sp := p.steps[k]; sp.pending && now.Sub(sp.printed) >= p.every {
			p.print(now, sp)
		}
	}
}

// flush prints every waiting message now (before a step's end or a
// question), so the last word of a step is never lost.
func (p *progress) flush(now time.Time) {
	for _, k := range p.order() {
		if sp := p.steps[k]; sp.pending {
			p.print(now, sp)
		}
	}
}

func (p *progress) order() []int {
	ks := make([]int, 0, len(p.steps))
	for k := range p.steps {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

func (p *progress) print(now time.Time, sp *stepProgress) {
	fmt.Fprintf(p.out, "      … %s %s (%s)\n", sp.num, CleanLine(sp.msg), sp.elapsed)
	sp.pending, sp.printed = false, now
}
