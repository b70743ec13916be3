package schedule

import (
	"container/heap"
	"time"
)

// index keeps, for every window the scheduler knows, when it next needs
// attention (its announcement, its start, the end of an open approval
// window), in a min-heap: the loop looks at the earliest instead of reading
// every window from the store at every wake-up. Paused windows and windows
// with an unusable schedule are known but not queued. It is guarded by the
// Scheduler's mu.
type index struct {
	byID map[string]*entry
	heap entryHeap
}

type entry struct {
	id  string
	due time.Time // zero: not queued
	pos int       // position in the heap, -1 when not queued
	// gen is the index generation of the last local change (Add, a click,
	// a pass): a reload that read the store before it must not undo it.
	gen uint64
}

func newIndex() *index { return &index{byID: map[string]*entry{}} }

// set records when a window next needs attention (zero: not until a
// change or a reload says so).
func (x *index) set(id string, due time.Time, gen uint64) {
	e, ok := x.byID[id]
	if !ok {
		e = &entry{id: id, pos: -1}
		x.byID[id] = e
	}
	e.gen = gen
	switch {
	case due.Equal(e.due) && (e.pos >= 0) == !due.IsZero():
		// Unchanged: most windows at a reload.
	case due.IsZero() && e.pos >= 0:
		heap.Remove(&x.heap, e.pos)
	case due.IsZero():
	case e.pos >= 0:
		e.due = due
		heap.Fix(&x.heap, e.pos)
	default:
		e.due = due
		heap.Push(&x.heap, e)
	}
	if due.IsZero() {
		e.due = time.Time{}
	}
}

// remove forgets a window.
func (x *index) remove(id string) {
	e, ok := x.byID[id]
	if !ok {
		return
	}
	if e.pos >= 0 {
		heap.Remove(&x.heap, e.pos)
	}
	delete(x.byID, id)
}

// first returns the window due soonest, if any is queued.
func (x *index) first() (*entry, bool) {
	if len(x.heap) == 0 {
		return nil, false
	}
	return x.heap[0], true
}

func (x *index) len() int { return len(x.byID) }

// entryHeap orders entries by due time (then id, so equal times come in a
// stable order).
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].id < h[j].id
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}
func (h *entryHeap) Push(v any) {
	e := v.(*entry)
	e.pos = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.pos = -1
	return e
}
