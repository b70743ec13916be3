package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

// fakeScheduler records what the front asks of the scheduler.
type fakeScheduler struct {
	st    store.Store
	mu    sync.Mutex
	calls []string
}

func (s *fakeScheduler) record(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf(format, a...))
}

func (s *fakeScheduler) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *fakeScheduler) Add(ctx context.Context, w store.Window) (store.Window, []time.Time, error) {
	if w.Spec == "bad" {
		return store.Window{}, nil, errors.New("expected exactly 5 fields, found 1: [bad]")
	}
	w.ID = "w1"
	w.NextStart = time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC)
	s.record("add %s %s %q %s", w.Cluster, w.Spec, w.Command, w.CreatedBy)
	return w, []time.Time{w.NextStart, w.NextStart.AddDate(0, 0, 7), w.NextStart.AddDate(0, 0, 14)}, s.st.PutWindow(ctx, w)
}
func (s *fakeScheduler) List(ctx context.Context) ([]store.Window, error) {
	return s.st.ListWindows(ctx)
}
func (s *fakeScheduler) Remove(ctx context.Context, id string) error {
	s.record("remove %s", id)
	return s.st.DeleteWindow(ctx, id)
}
func (s *fakeScheduler) SetPaused(ctx context.Context, id string, paused bool) (store.Window, error) {
	s.record("paused %s %t", id, paused)
	w, err := s.st.GetWindow(ctx, id)
	w.Paused = paused
	return w, err
}
func (s *fakeScheduler) Skip(ctx context.Context, id string, start time.Time, by string) error {
	s.record("skip %s %d %s", id, start.Unix(), by)
	return nil
}
func (s *fakeScheduler) Approve(ctx context.Context, id string, start time.Time, by string) error {
	s.record("approve %s %d %s", id, start.Unix(), by)
	return nil
}

func TestScheduleCommandsAndWindowEvents(t *testing.T) {
	sched := &fakeScheduler{}
	h := newHarness(t, "http", withScheduler(sched))
	sched.st = h.store

	h.command(uRequest, chProd, `schedule add "bad" upgrade 1.7.15`)
	h.fs.ephemeralTo(uRequest, "Could not add the window: expected exactly 5 fields")
	h.command(uStranger, chProd, `schedule add "0 2 * * 6" upgrade 1.7.15`)
	h.fs.ephemeralTo(uStranger, "not allowed to change maintenance windows of prod")
	h.command(uRequest, chProd, `schedule add "0 2 * * 6" upgrade 1.7.15 --approval required`)
	h.fs.waitFor("window added in the channel", func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.Channel() == chProd && strings.Contains(c.Text(), "scheduled window w1") && strings.Contains(c.Text(), "Sat 5 Dec") {
				return true
			}
		}
		return false
	})
	h.command(uStranger, chProd, "schedule list")
	h.fs.ephemeralTo(uStranger, "w1: `0 2 * * 6` UTC, upgrade 1.7.15 on prod")

	w, _ := h.store.GetWindow(context.Background(), "w1")
	start := w.NextStart.Unix()
	// Times read in each reader's own time zone, UTC where a client cannot.
	date := func(t time.Time) string {
		return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("Mon 2 Jan 15:04 UTC"))
	}
	for _, ev := range []struct {
		kind   events.Kind
		button string
		by     string
		reason events.WindowReason
		text   string // how the front writes the event
	}{
		{events.WindowAnnounced, fmt.Sprintf("nocobot.window.skip=w1|%d", start), "", "", "w1 (upgrade 1.7.15 on prod) opens " + date(w.NextStart)},
		{events.WindowApproval, fmt.Sprintf("nocobot.window.start=w1|%d", start), "", "", "is open until " + date(w.NextStart.Add(time.Hour))},
		{events.WindowMissed, "", "", events.WindowLateStart, "missed its start at " + date(w.NextStart)},
		{events.WindowSkipped, "", uRequest, events.WindowAsked, "skipped, as asked by <@" + uRequest + ">"},
	} {
		h.bus.Publish(events.Event{Kind: ev.kind, Step: -1, Message: "plain " + string(ev.kind), At: time.Now(), Window: &events.WindowEvent{Window: w, Start: w.NextStart, End: w.NextStart.Add(time.Hour), By: ev.by, Reason: ev.reason}})
		var post apiCall
		h.fs.waitFor("window event "+string(ev.kind), func(cs []apiCall) bool {
			for _, c := range cs {
				if c.Method == "chat.postMessage" && strings.Contains(c.Text(), ev.text) {
					post = c
					return true
				}
			}
			return false
		})
		if post.Channel() != chProd {
			t.Fatalf("window event in %s", post.Channel())
		}
		if got := strings.Join(post.Buttons(), ","); got != ev.button {
			t.Fatalf("%s buttons %q, want %q", ev.kind, got, ev.button)
		}
		if ev.button == "" {
			continue
		}
		action, value, _ := strings.Cut(ev.button, "=")
		h.click(uApprover, chProd, post.TS, action, value)
		h.fs.ephemeralTo(uApprover, "not allowed to run procedures on prod")
		h.click(uRequest, chProd, post.TS, action, value)
		h.fs.waitFor("window message updated", func(cs []apiCall) bool {
			last := latestOf(cs, post.TS)
			return last.Method == "chat.update" && strings.Contains(last.Text(), "by <@"+uRequest+">") && len(last.Buttons()) == 0
		})
	}
	want := []string{
		`add prod 0 2 * * 6 "upgrade 1.7.15" ` + uRequest,
		fmt.Sprintf("skip w1 %d %s", start, uRequest),
		fmt.Sprintf("approve w1 %d %s", start, uRequest),
	}
	if got := sched.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("scheduler calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
