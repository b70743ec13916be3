package procedures

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nocobot/nocobot/store"
)

// EventKind says what happened to a run.
type EventKind string

const (
	EventRunStarted   EventKind = "run.started"
	EventRunResumed   EventKind = "run.resumed" // picked up after a restart or by another replica
	EventStepStarted  EventKind = "step.started"
	EventStepProgress EventKind = "step.progress"
	EventStepDone     EventKind = "step.done"
	EventStepFailed   EventKind = "step.failed"
	EventStepSkipped  EventKind = "step.skipped"
	EventCheckpoint   EventKind = "checkpoint.opened" // a question waits for a decision
	EventReminder     EventKind = "checkpoint.reminder"
	EventDecided      EventKind = "checkpoint.decided"
	EventRollingBack  EventKind = "run.rolling-back"
	EventStoreDown    EventKind = "store.unavailable" // paused: transitions cannot be recorded
	EventStoreBack    EventKind = "store.available"
	EventRunFinished  EventKind = "run.finished"
	// EventMissed tells a subscriber that fell behind how many events it
	// lost; the next events are current again.
	EventMissed EventKind = "events.missed"
)

// Event is published for every transition and progress update of a run.
// Run is a snapshot taken right after the change.
type Event struct {
	Kind     EventKind
	Run      store.Run
	Step     int // index into Run.Steps, -1 when not about a step
	Message  string
	Decision *store.Decision
	Window   *store.Window // window events
	At       time.Time
}

// Subscription delivers events in order. A subscriber that falls behind
// loses events, progress ones first, once maxQueued wait for it; an
// EventMissed then says how many, so memory stays bounded.
type Subscription struct {
	C <-chan Event

	bus    *bus
	mu     sync.Mutex
	queue  []Event
	missed int
	signal chan struct{}
	done   chan struct{}
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.bus.remove(s)
}

const maxQueued = 512

func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	if len(s.queue) >= maxQueued {
		i := slices.IndexFunc(s.queue, func(e Event) bool { return e.Kind == EventStepProgress })
		if i < 0 {
			i = 0
		}
		s.queue = slices.Delete(s.queue, i, i+1)
		s.missed++
	}
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// next takes the next event to deliver: the news of missed events first.
func (s *Subscription) next() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.missed > 0 {
		n := s.missed
		s.missed = 0
		at := time.Now()
		if len(s.queue) > 0 {
			at = s.queue[0].At
		}
		return Event{Kind: EventMissed, Step: -1, Message: fmt.Sprintf("missed %d events (this subscriber fell behind)", n), At: at}, true
	}
	if len(s.queue) == 0 {
		return Event{}, false
	}
	ev := s.queue[0]
	s.queue[0] = Event{}
	s.queue = s.queue[1:]
	return ev, true
}

func (s *Subscription) pump(out chan<- Event) {
	defer close(out)
	for {
		ev, ok := s.next()
		if !ok {
			select {
			case <-s.signal:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case out <- ev:
		case <-s.done:
			return
		}
	}
}

// bus fans events out to subscribers without ever blocking the engine.
type bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

func newBus() *bus { return &bus{subs: map[*Subscription]struct{}{}} }

func (b *bus) subscribe() *Subscription {
	out := make(chan Event)
	s := &Subscription{C: out, bus: b, signal: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.pump(out)
	return s
}

func (b *bus) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.done)
	}
}

func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.push(ev)
	}
}
