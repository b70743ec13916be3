// Package events carries what happens to runs and maintenance windows to
// whoever shows it: the engine (procedures) publishes run events, the
// scheduler window events, on one Bus that app builds; the fronts (Slack,
// the terminal), the webhooks and the metrics subscribe.
package events

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nocobot/nocobot/store"
)

// Kind says what happened to a run.
type Kind string

const (
	RunStarted   Kind = "run.started"
	RunResumed   Kind = "run.resumed" // picked up after a restart or by another replica
	StepStarted  Kind = "step.started"
	StepProgress Kind = "step.progress"
	StepDone     Kind = "step.done"
	StepFailed   Kind = "step.failed"
	StepSkipped  Kind = "step.skipped"
	Checkpoint   Kind = "checkpoint.opened" // a question waits for a decision
	Reminder     Kind = "checkpoint.reminder"
	Decided      Kind = "checkpoint.decided"
	RollingBack  Kind = "run.rolling-back"
	StoreDown    Kind = "store.unavailable" // paused: transitions cannot be recorded
	StoreBack    Kind = "store.available"
	RunFinished  Kind = "run.finished"
	// Missed tells a subscriber that fell behind how many events it
	// lost; the next events are current again.
	Missed Kind = "events.missed"
)

// Maintenance-window event kinds, published by the scheduler through
// the bus with Event.Window set.
const (
	// WindowAnnounced: the window opens within its lead time (Start).
	WindowAnnounced Kind = "window.announced"
	// WindowApproval: an approval-required window is open until End
	// and waits for an authorized Start click.
	WindowApproval Kind = "window.approval"
	// WindowStarted: the window's run started; the event carries it.
	WindowStarted Kind = "window.started"
	// WindowSkipped: a start did not happen; Reason says why.
	WindowSkipped Kind = "window.skipped"
	// WindowMissed: a start passed while the bot was down; Reason says
	// whether it starts late or is skipped.
	WindowMissed Kind = "window.missed"
	// WindowOverrun: the window closed while its run was unfinished.
	WindowOverrun Kind = "window.overrun"
)

// WindowReason says why a window's start was skipped or missed.
type WindowReason string

const (
	WindowAsked        WindowReason = "asked"         // a person pressed Skip (By)
	WindowBusy         WindowReason = "busy"          // another run held the cluster (Err)
	WindowStartFailed  WindowReason = "start-failed"  // the run could not start (Err)
	WindowNotApproved  WindowReason = "not-approved"  // nobody pressed Start before End
	WindowLateStart    WindowReason = "late-start"    // missed while down, starting now (Late, Grace)
	WindowLateApproval WindowReason = "late-approval" // missed while down, still open: asking for Start now
	WindowSuperseded   WindowReason = "superseded"    // missed while down; a later start followed (More: further ones)
	WindowBeyondGrace  WindowReason = "beyond-grace"  // missed while down, too late to start (Late, Grace)
	WindowClosed       WindowReason = "closed"        // missed while down; its window had closed (End)
)

// WindowEvent is what the scheduler reports about one start of a
// maintenance window. It holds facts, not prose: each front writes people,
// times and durations its own way.
type WindowEvent struct {
	// Window is the window's definition; its NextStart is set to Start, so
	// a front's buttons carry the start the event is about.
	Window store.Window
	Start  time.Time // the start the event is about
	End    time.Time // when the window of that start closes
	Next   time.Time // the window's following start (zero: unknown)
	// By is who skipped or approved the start: a front's user id ("U123")
	// or a terminal user ("terminal:alice").
	By     string
	Reason WindowReason  // skipped and missed events
	Late   time.Duration // how late a missed start is, or starts
	Grace  time.Duration // the scheduler's grace for missed starts
	More   int           // missed: further starts, not reported one by one
	Err    string        // skipped: why the run could not start
}

// Event is published for every transition and progress update of a run.
// Run is a snapshot taken right after the change.
type Event struct {
	Kind     Kind
	Run      store.Run
	Step     int // index into Run.Steps, -1 when not about a step
	Message  string
	Decision *store.Decision
	Window   *WindowEvent // window events
	At       time.Time
}

// Subscription delivers events in order. A subscriber that falls behind
// loses events, progress ones first, once maxQueued wait for it; an
// Missed then says how many, so memory stays bounded.
type Subscription struct {
	C <-chan Event

	bus    *Bus
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
		i := slices.IndexFunc(s.queue, func(e Event) bool { return e.Kind == StepProgress })
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
		return Event{Kind: Missed, Step: -1, Message: fmt.Sprintf("missed %d events (this subscriber fell behind)", n), At: at}, true
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

// Bus fans events out to subscribers without ever blocking the engine.
type Bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

func NewBus() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

func (b *Bus) Subscribe() *Subscription {
	out := make(chan Event)
	s := &Subscription{C: out, bus: b, signal: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.pump(out)
	return s
}

func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.done)
	}
}

func (b *Bus) Publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.push(ev)
	}
}
