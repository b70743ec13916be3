package procedures

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/bolt"
)

// fakeClock is moved by the test; After fires when the clock passes it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	keep := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(t) {
			keep = append(keep, tm)
			continue
		}
		tm.ch <- t
	}
	c.timers = keep
}

// published is one window event as a front would receive it.
type published struct {
	kind EventKind
	w    store.Window
	run  *store.Run
	msg  string
	at   time.Time // the clock when it was published
}

// schedHarness runs a Scheduler on a real bolt store with a fake clock; a
// restart is a new Scheduler on the same store.
type schedHarness struct {
	t      *testing.T
	st     *bolt.Store
	clock  *fakeClock
	config []store.Window
	grace  time.Duration

	mu     sync.Mutex
	events []published
	starts []time.Time // clock at each StartRun
	nrun   int

	s      *Scheduler
	cancel context.CancelFunc
	done   chan error
	passed chan int64
}

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) // a Monday

func newSchedHarness(t *testing.T, start time.Time) *schedHarness {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "nocobot.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	h := &schedHarness{t: t, st: st, clock: &fakeClock{now: start}}
	t.Cleanup(func() {
		h.stop()
		st.Close()
	})
	return h
}

func (h *schedHarness) publish(kind EventKind, w store.Window, run *store.Run, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, published{kind: kind, w: w, run: run, msg: msg, at: h.clock.Now()})
}

// startRun stands in for main's StartRun: it records the run in the store,
// where the cluster lock makes a second run on a busy cluster fail.
func (h *schedHarness) startRun(ctx context.Context, w store.Window) (store.Run, error) {
	h.mu.Lock()
	h.nrun++
	id := fmt.Sprintf("r-%d", h.nrun)
	h.mu.Unlock()
	r := store.Run{ID: id, Cluster: w.Cluster, Procedure: ProcMaintain, Requester: "scheduler:" + w.ID, Via: "scheduler",
		State: store.StateRunning, Created: h.clock.Now(), Updated: h.clock.Now()}
	got, err := h.st.CreateRun(ctx, r)
	if errors.Is(err, store.ErrClusterBusy) {
		return store.Run{}, &BusyError{Run: got}
	}
	if err != nil {
		return store.Run{}, err
	}
	h.mu.Lock()
	h.starts = append(h.starts, h.clock.Now())
	h.mu.Unlock()
	return got, nil
}

func (h *schedHarness) start() {
	h.t.Helper()
	s, err := NewScheduler(SchedulerOptions{
		Store: h.st, Clock: h.clock, Log: zerolog.Nop(), Publish: h.publish,
		StartRun: h.startRun, MissedGrace: h.grace, ConfigWindows: h.config,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.passed = make(chan int64, 1000)
	s.afterPass = func(n int64) { h.passed <- n }
	ctx, cancel := context.WithCancel(context.Background())
	h.s, h.cancel, h.done = s, cancel, make(chan error, 1)
	go func() { h.done <- s.Run(ctx) }()
	h.waitPass(1)
}

// stop is the bot going down.
func (h *schedHarness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

func (h *schedHarness) restart() {
	h.stop()
	h.start()
}

func (h *schedHarness) waitPass(n int64) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-h.passed:
			if got >= n {
				return
			}
		case <-deadline:
			h.t.Fatalf("the scheduler did not finish pass %d", n)
		}
	}
}

// sync waits until a pass that began after now has finished: everything
// due at the clock's time has been done.
func (h *schedHarness) sync() {
	h.t.Helper()
	n := h.s.passes.Load()
	h.s.nudge()
	h.waitPass(n + 1)
}

// at moves the clock (while the bot is up) and lets the scheduler catch up.
func (h *schedHarness) at(t time.Time) {
	h.t.Helper()
	h.clock.set(t)
	if h.cancel != nil {
		h.sync()
	}
}

func (h *schedHarness) of(kind EventKind) []published {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []published
	for _, e := range h.events {
		if e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *schedHarness) startCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.starts)
}

func (h *schedHarness) add(w store.Window) store.Window {
	h.t.Helper()
	if w.Cluster == "" {
		w.Cluster = "prod"
	}
	if w.Command == "" {
		w.Command = "maintain backup"
	}
	saved, _, err := h.s.Add(context.Background(), w)
	if err != nil {
		h.t.Fatal(err)
	}
	h.sync()
	return saved
}

func (h *schedHarness) window(id string) store.Window {
	h.t.Helper()
	w, err := h.st.GetWindow(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

func (h *schedHarness) finishRuns() {
	h.t.Helper()
	runs, err := h.st.UnfinishedRuns(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range runs {
		r.State, r.Ended = store.StateSucceeded, h.clock.Now()
		if err := h.st.UpdateRun(context.Background(), r); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *schedHarness) expect(kind EventKind, n int, what string) []published {
	h.t.Helper()
	got := h.of(kind)
	if len(got) != n {
		var msgs []string
		for _, e := range got {
			msgs = append(msgs, e.msg)
		}
		h.t.Fatalf("%s: %d %s events, want %d: %q", what, len(got), kind, n, msgs)
	}
	return got
}

func (h *schedHarness) expectStarts(n int, what string) {
	h.t.Helper()
	if got := h.startCount(); got != n {
		h.t.Fatalf("%s: %d runs started, want %d", what, got, n)
	}
}

func TestSchedulerAddListRemove(t *testing.T) {
	h := newSchedHarness(t, time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)) // Wednesday
	h.config = []store.Window{{ID: "weekly-backup", Cluster: "prod", Spec: "@weekly", Command: "maintain backup"}}
	h.start()
	ctx := context.Background()

	_, _, err := h.s.Add(ctx, store.Window{Cluster: "prod", Spec: "61 2 * * 6", Command: "upgrade 1.7.15"})
	if err == nil || !strings.Contains(err.Error(), "above maximum (59)") {
		t.Fatalf("invalid expression: %v, want the parser's reason", err)
	}
	w, next, err := h.s.Add(ctx, store.Window{Cluster: "prod", Spec: "0 2 * * 6", TZ: "Europe/Berlin", Command: "upgrade 1.7.15", CreatedBy: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^w-[a-z0-9]{4}$`).MatchString(w.ID) {
		t.Errorf("id %q is not short and typeable", w.ID)
	}
	var got []string
	for _, n := range next {
		got = append(got, n.Format("Mon 2 Jan 15:04 MST"))
	}
	equalStrings(t, "next three starts", got, []string{"Sat 6 Jun 02:00 CEST", "Sat 13 Jun 02:00 CEST", "Sat 20 Jun 02:00 CEST"})
	if w.Duration != time.Hour || !w.NextStart.Equal(next[0]) {
		t.Errorf("saved window: duration %s next %s", w.Duration, w.NextStart)
	}
	if _, _, err := h.s.Add(ctx, store.Window{ID: w.ID, Cluster: "prod", Spec: "@daily", Command: "start"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate id: %v", err)
	}

	ws, err := h.s.List(ctx)
	if err != nil || len(ws) != 2 || ws[0].ID != w.ID || ws[1].ID != "weekly-backup" || !ws[1].FromConfig {
		t.Fatalf("List = %+v, %v; want %s (Sat) then weekly-backup (Sun), soonest first", ws, err, w.ID)
	}

	if err := h.s.Remove(ctx, "w-nope"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "schedule list") {
		t.Errorf("Remove unknown: %v", err)
	}
	if err := h.s.Remove(ctx, "weekly-backup"); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Errorf("Remove config window: %v", err)
	}
	if err := h.s.Remove(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if ws, _ := h.s.List(ctx); len(ws) != 1 {
		t.Errorf("after Remove: %d windows", len(ws))
	}
}

func TestSchedulerAnnouncesOnceAtLeadTime(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *", Announce: 30 * time.Minute, Duration: 2 * time.Hour, Command: "upgrade 1.7.15"})
	start := t0.Add(2 * time.Hour)

	h.at(start.Add(-30*time.Minute - time.Second))
	h.expect(EventWindowAnnounced, 0, "a second before the lead time")
	h.at(start.Add(-30 * time.Minute))
	a := h.expect(EventWindowAnnounced, 1, "at the lead time")[0]
	if !a.at.Equal(start.Add(-30*time.Minute)) || !a.w.NextStart.Equal(start) || a.w.ID != w.ID {
		t.Errorf("announcement at %s for start %s", a.at, a.w.NextStart)
	}
	for _, want := range []string{w.ID, "upgrade 1.7.15", "02:00", "in 30m", "for 2h"} {
		if !strings.Contains(a.msg, want) {
			t.Errorf("announcement %q does not mention %q", a.msg, want)
		}
	}
	h.at(start.Add(-10 * time.Minute))
	h.restart() // restart between announcement and start
	h.expect(EventWindowAnnounced, 1, "after a restart")
	h.expectStarts(0, "before the start")

	h.at(start)
	h.expectStarts(1, "at the start")
	s := h.expect(EventWindowStarted, 1, "at the start")[0]
	if s.run == nil || s.run.ID != "r-1" || !s.w.NextStart.Equal(start) || !strings.Contains(s.msg, "r-1") {
		t.Errorf("started event: %+v", s)
	}
	if got := h.window(w.ID).NextStart; !got.Equal(start.Add(24 * time.Hour)) {
		t.Errorf("NextStart after the start = %s", got)
	}
	h.at(start.Add(30 * time.Second))
	h.restart()
	h.expectStarts(1, "after a restart past the start")
	h.expect(EventWindowMissed, 0, "after a restart past the start")
	h.finishRuns()

	h.at(start.Add(24*time.Hour - 30*time.Minute))
	h.expect(EventWindowAnnounced, 2, "the next day")
}

func TestSchedulerRestartBeforeStart(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *"})
	h.at(t0.Add(time.Hour + 55*time.Minute))
	h.stop()
	h.clock.set(t0.Add(time.Hour + 59*time.Minute))
	h.start()
	h.expectStarts(0, "restarted before the start")
	h.at(t0.Add(2 * time.Hour))
	h.expectStarts(1, "at the start after a restart")
	h.expect(EventWindowMissed, 0, "nothing was missed")
	if got := h.window(w.ID).NextStart; !got.Equal(t0.Add(26 * time.Hour)) {
		t.Errorf("NextStart = %s", got)
	}
}

func TestSchedulerMissedWithinGraceStartsLate(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	h.add(store.Window{Spec: "0 2 * * *"})
	h.stop()
	h.clock.set(t0.Add(2*time.Hour + 5*time.Minute)) // down at 02:00, back at 02:05
	h.start()
	m := h.expect(EventWindowMissed, 1, "back within grace")[0]
	if !strings.Contains(m.msg, "starting now, 5m late") || !m.w.NextStart.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("missed report %q for %s", m.msg, m.w.NextStart)
	}
	h.expectStarts(1, "back within grace")
	if s := h.expect(EventWindowStarted, 1, "late start")[0]; !strings.Contains(s.msg, "5m late") {
		t.Errorf("started: %q", s.msg)
	}
	h.restart()
	h.expect(EventWindowMissed, 1, "a second restart")
	h.expectStarts(1, "a second restart")
}

func TestSchedulerMissedBeyondGraceSkipped(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.grace = 10 * time.Minute
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *"})
	h.stop()
	h.clock.set(t0.Add(2*time.Hour + 40*time.Minute))
	h.start()
	h.expectStarts(0, "back beyond grace")
	m := h.expect(EventWindowMissed, 1, "back beyond grace")[0]
	if !strings.Contains(m.msg, "skipped (40m late, beyond the 10m grace)") {
		t.Errorf("missed: %q", m.msg)
	}
	h.expect(EventWindowSkipped, 1, "the channel is told")
	if got := h.window(w.ID).NextStart; !got.Equal(t0.Add(26 * time.Hour)) {
		t.Errorf("NextStart = %s", got)
	}
}

func TestSchedulerDownForDaysReportsEachMissedStart(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	h.add(store.Window{Spec: "0 2 * * *"})
	h.stop()
	h.clock.set(t0.Add(3*24*time.Hour + 2*time.Hour + 3*time.Minute)) // back on day 3 at 02:03
	h.start()
	ms := h.expect(EventWindowMissed, 4, "down for three days")
	for i, m := range ms[:3] {
		if !m.w.NextStart.Equal(t0.Add(time.Duration(i)*24*time.Hour+2*time.Hour)) || !strings.Contains(m.msg, "skipped") {
			t.Errorf("missed %d: %s %q", i, m.w.NextStart, m.msg)
		}
	}
	if !strings.Contains(ms[3].msg, "starting now, 3m late") {
		t.Errorf("latest: %q", ms[3].msg)
	}
	h.expectStarts(1, "only the latest start, within grace, runs")
}

func TestSchedulerOverrun(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	h.add(store.Window{Spec: "0 2 * * *", Duration: time.Hour})
	h.at(t0.Add(2 * time.Hour))
	h.expectStarts(1, "start")
	h.at(t0.Add(2*time.Hour + 30*time.Minute))
	h.restart() // the overrun check survives a restart
	h.at(t0.Add(3*time.Hour - time.Second))
	h.expect(EventWindowOverrun, 0, "before the window ends")
	h.at(t0.Add(3*time.Hour + 10*time.Second))
	o := h.expect(EventWindowOverrun, 1, "at the window's end")[0]
	if o.run == nil || o.run.ID != "r-1" || !strings.Contains(o.msg, "still running after 1h") || !strings.Contains(o.msg, "03:00") {
		t.Errorf("overrun: %q run %+v", o.msg, o.run)
	}
	h.at(t0.Add(4 * time.Hour))
	h.restart()
	h.expect(EventWindowOverrun, 1, "reported once")

	// A run that ends within its window is not reported; and the next day's
	// start meets the cluster still busy with yesterday's run: skipped.
	h.at(t0.Add(26 * time.Hour))
	h.expectStarts(1, "cluster busy")
	sk := h.expect(EventWindowSkipped, 1, "cluster busy")[0]
	if !strings.Contains(sk.msg, "run r-1") || !strings.Contains(sk.msg, "busy") {
		t.Errorf("busy skip does not name the run holding the cluster: %q", sk.msg)
	}
	h.finishRuns()
	h.at(t0.Add(50 * time.Hour))
	h.expectStarts(2, "day 3")
	h.finishRuns()
	h.at(t0.Add(51 * time.Hour))
	h.expect(EventWindowOverrun, 1, "a run that finished in time")
}

func TestSchedulerSkipButton(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	ctx := context.Background()
	w := h.add(store.Window{Spec: "0 2 * * *", Announce: time.Hour})
	start := t0.Add(2 * time.Hour)
	h.at(t0.Add(time.Hour))
	a := h.expect(EventWindowAnnounced, 1, "announced")[0]
	if err := h.s.Skip(ctx, w.ID, start.Add(time.Minute), "U1"); err == nil || !strings.Contains(err.Error(), "not a start") {
		t.Errorf("skip a time that is no start: %v", err)
	}
	if err := h.s.Skip(ctx, w.ID, time.Unix(a.w.NextStart.Unix(), 0), "U1"); err != nil { // as the button sends it
		t.Fatal(err)
	}
	if err := h.s.Skip(ctx, w.ID, start, "U1"); err != nil {
		t.Fatal(err)
	}
	sk := h.expect(EventWindowSkipped, 1, "skip clicked twice")[0]
	if !strings.Contains(sk.msg, "<@U1>") {
		t.Errorf("skip: %q", sk.msg)
	}
	h.at(start)
	h.expectStarts(0, "skipped start")
	h.expect(EventWindowSkipped, 1, "at the skipped start")
	if err := h.s.Skip(ctx, w.ID, start, "U1"); err == nil || !strings.Contains(err.Error(), "already passed") {
		t.Errorf("skip a past start: %v", err)
	}
	h.at(start.Add(24 * time.Hour))
	h.expectStarts(1, "the next day")
}

func TestSchedulerApproval(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	ctx := context.Background()
	w := h.add(store.Window{Spec: "0 2 * * *", Approval: true, Duration: time.Hour})
	start := t0.Add(2 * time.Hour)

	h.at(start.Add(-time.Minute))
	if err := h.s.Approve(ctx, w.ID, start, "U2"); err == nil || !strings.Contains(err.Error(), "opens at") {
		t.Errorf("approve early: %v", err)
	}
	h.at(start)
	h.expectStarts(0, "approval required")
	ap := h.expect(EventWindowApproval, 1, "at the start")[0]
	if !ap.w.NextStart.Equal(start) || !strings.Contains(ap.msg, "until") {
		t.Errorf("approval: %s %q", ap.w.NextStart, ap.msg)
	}
	h.at(start.Add(5 * time.Minute))
	h.restart()
	h.expect(EventWindowApproval, 1, "after a restart in the window")
	h.at(start.Add(10 * time.Minute))
	if err := h.s.Approve(ctx, w.ID, start, "U2"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Approve(ctx, w.ID, start, "U3"); err == nil {
		t.Error("a second Start click started nothing but was not refused")
	}
	h.expectStarts(1, "approved")
	if s := h.expect(EventWindowStarted, 1, "approved")[0]; !strings.Contains(s.msg, "approved by <@U2>") {
		t.Errorf("started: %q", s.msg)
	}
	h.finishRuns()

	// The next day nobody approves: skipped when the window closes.
	next := start.Add(24 * time.Hour)
	h.at(next)
	h.expect(EventWindowApproval, 2, "day 2")
	h.at(next.Add(time.Hour))
	sk := h.expect(EventWindowSkipped, 1, "nobody approved")[0]
	if !strings.Contains(sk.msg, "nobody pressed Start") {
		t.Errorf("skipped: %q", sk.msg)
	}
	if err := h.s.Approve(ctx, w.ID, next, "U2"); err == nil || !strings.Contains(err.Error(), "already started, been skipped or closed") {
		t.Errorf("approve after the window: %v", err)
	}
	h.expectStarts(1, "after day 2")
}

func TestSchedulerPauseResume(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	ctx := context.Background()
	w := h.add(store.Window{Spec: "0 2 * * *", Announce: 30 * time.Minute})
	if _, err := h.s.SetPaused(ctx, w.ID, true); err != nil {
		t.Fatal(err)
	}
	for day := range 3 {
		h.at(t0.Add(time.Duration(day)*24*time.Hour + 2*time.Hour))
	}
	h.restart()
	h.expect(EventWindowAnnounced, 0, "paused")
	h.expectStarts(0, "paused")
	h.expect(EventWindowMissed, 0, "paused")

	h.at(t0.Add(2*24*time.Hour + 12*time.Hour))
	rw, err := h.s.SetPaused(ctx, w.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(3*24*time.Hour + 2*time.Hour); !rw.NextStart.Equal(want) {
		t.Errorf("resumed NextStart = %s, want %s (from now, no burst)", rw.NextStart, want)
	}
	h.sync()
	h.expectStarts(0, "right after resume")
	h.expect(EventWindowMissed, 0, "right after resume")
	h.at(t0.Add(3*24*time.Hour + 2*time.Hour))
	h.expectStarts(1, "after resume")
}

// The Europe/Berlin window at 02:30 through the scheduler: it opens at
// 03:00 on the spring-forward day and once on the fall-back day.
func TestSchedulerDaylightSaving(t *testing.T) {
	loc := berlin(t)
	h := newSchedHarness(t, time.Date(2026, 3, 28, 12, 0, 0, 0, loc))
	h.start()
	h.add(store.Window{Spec: "30 2 * * *", TZ: "Europe/Berlin", Duration: 30 * time.Minute})
	h.at(time.Date(2026, 3, 29, 0, 59, 59, 0, time.UTC))
	h.expectStarts(0, "before 03:00 CEST")
	h.at(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)) // 03:00 CEST
	h.expectStarts(1, "spring forward")
	h.finishRuns()

	h.stop()
	h.clock.set(time.Date(2026, 10, 24, 12, 0, 0, 0, loc))
	h.start() // the window's starts since March are missed, beyond grace
	h.finishRuns()
	h.at(time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)) // 02:30 CEST
	h.expectStarts(2, "fall back, first 02:30")
	h.finishRuns()
	h.at(time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)) // 02:30 CET, the repeat
	h.expectStarts(2, "fall back, repeated 02:30")
	h.at(time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC)) // next day 02:30 CET
	h.expectStarts(3, "the day after")
}

func TestSchedulerConfigWindows(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.config = []store.Window{{ID: "nightly", Cluster: "prod", Spec: "0 2 * * *", Command: "maintain backup"}}
	h.start()
	w := h.window("nightly")
	if !w.FromConfig || !w.NextStart.Equal(t0.Add(2*time.Hour)) || w.Duration != time.Hour {
		t.Fatalf("config window: %+v", w)
	}
	h.stop()
	h.clock.set(t0.Add(2*time.Hour + time.Minute + 30*time.Second))
	h.start() // NextStart was kept: a missed start within grace, not lost
	h.expect(EventWindowMissed, 1, "config window missed")
	h.expectStarts(1, "config window")
	h.finishRuns()

	h.stop()
	h.config[0].Spec = "0 4 * * *"
	h.start()
	if got := h.window("nightly").NextStart; !got.Equal(t0.Add(4 * time.Hour)) {
		t.Errorf("changed spec: NextStart %s", got)
	}
	h.stop()
	h.config = nil
	h.start()
	if _, err := h.st.GetWindow(context.Background(), "nightly"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("window removed from the file is still stored: %v", err)
	}
	if _, err := NewScheduler(SchedulerOptions{Store: h.st, StartRun: h.startRun,
		ConfigWindows: []store.Window{{ID: "bad", Spec: "0 25 * * *", Command: "start"}}}); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("invalid config window: %v", err)
	}
}

// Two replicas on one store: the compare-and-set on NextStart lets exactly
// one of them start the window.
func TestSchedulerTwoReplicasStartOnce(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *"})
	second, err := NewScheduler(SchedulerOptions{Store: h.st, Clock: h.clock, Log: zerolog.Nop(), Publish: h.publish, StartRun: h.startRun})
	if err != nil {
		t.Fatal(err)
	}
	passed := make(chan int64, 100)
	second.afterPass = func(n int64) { passed <- n }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-passed

	h.clock.set(t0.Add(2 * time.Hour))
	n := second.passes.Load()
	second.nudge()
	h.sync()
	for got := int64(0); got <= n; got = <-passed {
	}
	h.expectStarts(1, "two replicas")
	h.expect(EventWindowStarted, 1, "two replicas")
	if got := h.window(w.ID).NextStart; !got.Equal(t0.Add(26 * time.Hour)) {
		t.Errorf("NextStart = %s", got)
	}
}
