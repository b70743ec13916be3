package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// slot is one message of a thread: the root, a step, a checkpoint, the
// summary or a notice. Its content is rendered from the thread's state
// at flush time, so a burst of events costs one call.
type slot struct {
	key       string
	ts        string // "" until posted
	sent      string // content last sent (text + blocks JSON)
	lastEdit  time.Time
	broadcast bool
	dropped   bool   // Slack refused it for good; not retried
	uploaded  string // the phase whose cut text was uploaded in full
}

// thread renders one run. apply is called by the renderer with each
// event and never blocks; loop posts and edits the messages.
type thread struct {
	f     *Front
	runID string
	wake  chan struct{}

	mu sync.Mutex // guards what follows; held briefly, never across a call
	// view is the run as the engine's events and the store tell it; the
	// thread only renders it.
	view      *bot.RunView
	channel   string
	known     map[string]string
	loaded    bool
	slots     []*slot
	byKey     map[string]*slot
	notes     map[string]string
	resolving time.Time // when channel resolution began
	// parked says why the channel refuses the thread (not_in_channel…);
	// the thread is tried again on an invitation or after a wait that
	// grows (park.go).
	parked      string
	parkedAt    time.Time // last refusal; zero: try now (invited)
	parkedSince time.Time // first refusal since the last post
	parkTries   int
	parkGaveUp  bool
	// rebuilt says why the thread was posted again under a new root.
	rebuilt  string
	rebuilds int
	// away are checkpoints shown in another channel while parked.
	away map[string]*away
}

func newThread(f *Front, runID string) *thread {
	return &thread{
		f: f, runID: runID, wake: make(chan struct{}, 1),
		view:  bot.NewRunView(),
		known: map[string]string{}, byKey: map[string]*slot{},
		notes: map[string]string{}, away: map[string]*away{},
	}
}

func (t *thread) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// ensure adds a slot in posting order; the caller holds mu.
func (t *thread) ensure(key string, broadcast bool) *slot {
	if s, ok := t.byKey[key]; ok {
		return s
	}
	s := &slot{key: key, broadcast: broadcast, ts: t.known[key]}
	t.slots = append(t.slots, s)
	t.byKey[key] = s
	return s
}

func stepKey(i int) string { return fmt.Sprintf("step:%d", i) }

// show takes a run's latest state. The first time, unless the run has
// just started, it is picked up mid-run (a restart, another replica):
// every step that has begun is shown, editing the messages the thread
// already has. The caller holds mu.
func (t *thread) show(r store.Run, justStarted bool) {
	first := t.view.Show(r)
	t.ensure("root", false)
	if !first || justStarted {
		return
	}
	for i, st := range r.Steps {
		if st.Status != store.StepPending && st.Status != store.StepWaiting {
			t.ensure(stepKey(i), false)
		}
	}
	if cp := r.Checkpoint; cp != nil {
		t.view.Ask(*cp)
		t.ensure("cp:"+cp.ID, false)
	}
}

// showRecorded takes a run as the store holds it (catching up at start).
func (t *thread) showRecorded(r store.Run) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.show(r, false)
}

// apply records an event in the run's view and gives what it shows a
// message.
func (t *thread) apply(ev events.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.show(ev.Run, ev.Kind == events.RunStarted)
	t.view.Apply(ev)
	switch ev.Kind {
	case events.StepStarted, events.StepDone, events.StepFailed, events.StepSkipped:
		if ev.Step >= 0 {
			t.ensure(stepKey(ev.Step), false)
		}
	case events.StepProgress:
		if ev.Step >= 0 {
			t.ensure(stepKey(ev.Step), false)
		}
	case events.Checkpoint:
		if cp := ev.Run.Checkpoint; cp != nil {
			t.ensure("cp:"+cp.ID, false)
		}
	case events.Reminder:
		if cp := ev.Run.Checkpoint; cp != nil {
			t.note(ev, renderReminder(ev.Run, cp.Reminded, t.f.decidersLine(ev.Run, *cp)))
		}
	case events.RollingBack:
		msg := capitalize(ev.Message)
		if d := ev.Decision; d != nil && d.Via != "engine" {
			msg = "Rolling back, chosen by " + mention(d.By)
		}
		t.note(ev, ":rewind: "+msg)
	case events.StoreDown:
		t.note(ev, ":warning: "+capitalize(ev.Message))
	case events.StoreBack:
		t.note(ev, ":white_check_mark: "+capitalize(ev.Message))
	case events.RunResumed:
		t.note(ev, ":arrow_forward: "+capitalize(ev.Message))
	case events.RunFinished:
		t.ensure("summary", true)
	}
}

func (t *thread) note(ev events.Event, text string) {
	key := fmt.Sprintf("note:%d", ev.At.UnixNano())
	t.notes[key] = text
	t.ensure(key, false)
}

// decided shows a decision at once, before the engine acts on it.
func (t *thread) decided(d store.Decision) {
	t.mu.Lock()
	t.view.Decide(d)
	t.mu.Unlock()
	t.poke()
}

// loop posts and edits the thread's messages until the run is finished
// and shown, or the front stops.
func (t *thread) loop(ctx context.Context) {
	f := t.f
	defer func() {
		f.mu.Lock()
		if f.threads[t.runID] == t {
			delete(f.threads, t.runID)
			delete(f.bound, t.runID)
		}
		f.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		}
		// Let a burst of events settle into one call per message.
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.opts.FlushDelay):
		}
		for {
			timer, done := t.flush(ctx)
			if done || ctx.Err() != nil {
				return
			}
			if timer == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
				// New state: settle briefly, then flush what is due.
				select {
				case <-ctx.Done():
					return
				case <-time.After(f.opts.FlushDelay):
				}
			case <-timer:
			}
		}
	}
}

// flush sends what is due. It returns a timer for a deferred edit or a
// retry of a parked thread (nil: nothing deferred) and whether the
// thread is complete.
func (t *thread) flush(ctx context.Context) (<-chan time.Time, bool) {
	f := t.f
	if !t.resolve(ctx) {
		t.mu.Lock()
		nowhere, finished := t.channel == "-", t.view.Finished
		t.mu.Unlock()
		if nowhere {
			return nil, finished // nothing to show; end with the run
		}
		return time.After(time.Second), false
	}
	if t.stillParked() {
		return t.parkedWait(ctx), false
	}
	t.mu.Lock()
	slots := slices.Clone(t.slots)
	channel := t.channel
	root := t.byKey["root"]
	t.mu.Unlock()
	var wait time.Duration
	for _, s := range slots {
		if s.dropped {
			continue
		}
		t.mu.Lock()
		text, blocks := t.render(s.key)
		t.mu.Unlock()
		if s.ts != "" && contentKey(text, blocks) == s.sent {
			continue
		}
		if s != root && root.ts == "" {
			break // the root is not posted; replies wait for it
		}
		if s.ts != "" {
			if due := s.lastEdit.Add(f.opts.EditEvery); time.Now().Before(due) {
				if w := time.Until(due); wait == 0 || w < wait {
					wait = w
				}
				continue
			}
		}
		switch t.send(ctx, channel, s, root) {
		case sendStop:
			return nil, false
		case sendParked:
			return t.parkedWait(ctx), false
		case sendRebuilt:
			return time.After(time.Millisecond), false
		}
	}
	t.showAway(ctx)
	t.mu.Lock()
	done := t.view.Finished && wait == 0 && t.allSent()
	t.mu.Unlock()
	if wait > 0 {
		return time.After(wait), done
	}
	return nil, done
}

// allSent: every slot shows its latest content; the caller holds mu.
func (t *thread) allSent() bool {
	for _, s := range t.slots {
		if s.dropped {
			continue
		}
		text, blocks := t.render(s.key)
		if s.ts == "" || s.sent != contentKey(text, blocks) {
			return false
		}
	}
	return true
}

func contentKey(text string, blocks []slack.Block) string {
	b, _ := json.Marshal(blocks)
	return text + "\x00" + string(b)
}

// render returns a slot's text and blocks; the caller holds mu.
func (t *thread) render(key string) (string, []slack.Block) {
	r := t.view.Run
	switch {
	case key == "root":
		return renderRoot(r, t.rebuilt)
	case key == "summary":
		return renderSummary(r)
	case strings.HasPrefix(key, "step:"):
		var i int
		fmt.Sscanf(key, "step:%d", &i)
		if i < 0 || i >= len(r.Steps) {
			return "", nil
		}
		return renderStep(r.Steps[i], t.view.ProgressAt[i])
	case strings.HasPrefix(key, "cp:"):
		if q, ok := t.view.Questions[strings.TrimPrefix(key, "cp:")]; ok {
			return renderCheckpoint(r, q, t.f.decidersLine(r, q.Checkpoint))
		}
	case strings.HasPrefix(key, "note:"):
		return t.notes[key], []slack.Block{section(t.notes[key])}
	}
	return "", nil
}

// phase is what a message is about, for uploads: a cut message's full
// text is uploaded once a phase (a step running, then failed), not at
// every edit (the root's status line changes all the time); the caller
// holds mu.
func (t *thread) phase(key string) string {
	switch {
	case strings.HasPrefix(key, "step:"):
		var i int
		fmt.Sscanf(key, "step:%d", &i)
		if i >= 0 && i < len(t.view.Run.Steps) {
			return key + "|" + string(t.view.Run.Steps[i].Status)
		}
	case strings.HasPrefix(key, "cp:"):
		if q, ok := t.view.Questions[strings.TrimPrefix(key, "cp:")]; ok && !q.Open() {
			return key + "|closed"
		}
	}
	return key
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
