package schedule

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/store"
)

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
	h.expect(events.WindowAnnounced, 0, "a second before the lead time")
	h.at(start.Add(-30 * time.Minute))
	a := h.expect(events.WindowAnnounced, 1, "at the lead time")[0]
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
	h.expect(events.WindowAnnounced, 1, "after a restart")
	h.expectStarts(0, "before the start")

	h.at(start)
	h.expectStarts(1, "at the start")
	s := h.expect(events.WindowStarted, 1, "at the start")[0]
	if s.run == nil || s.run.ID != "r-1" || !s.w.NextStart.Equal(start) || !strings.Contains(s.msg, "r-1") {
		t.Errorf("started event: %+v", s)
	}
	if got := h.window(w.ID).NextStart; !got.Equal(start.Add(24 * time.Hour)) {
		t.Errorf("NextStart after the start = %s", got)
	}
	h.at(start.Add(30 * time.Second))
	h.restart()
	h.expectStarts(1, "after a restart past the start")
	h.expect(events.WindowMissed, 0, "after a restart past the start")
	h.finishRuns()

	h.at(start.Add(24*time.Hour - 30*time.Minute))
	h.expect(events.WindowAnnounced, 2, "the next day")
}

func TestSchedulerRestartBeforeStart(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *"})
	h.at(t0.Add(time.Hour + 55*time.Minute))
	h.stop()
	h.setClock(t0.Add(time.Hour + 59*time.Minute))
	h.start()
	h.expectStarts(0, "restarted before the start")
	h.at(t0.Add(2 * time.Hour))
	h.expectStarts(1, "at the start after a restart")
	h.expect(events.WindowMissed, 0, "nothing was missed")
	if got := h.window(w.ID).NextStart; !got.Equal(t0.Add(26 * time.Hour)) {
		t.Errorf("NextStart = %s", got)
	}
}

func TestSchedulerMissedWithinGraceStartsLate(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	h.add(store.Window{Spec: "0 2 * * *"})
	h.stop()
	h.setClock(t0.Add(2*time.Hour + 5*time.Minute)) // down at 02:00, back at 02:05
	h.start()
	m := h.expect(events.WindowMissed, 1, "back within grace")[0]
	if !strings.Contains(m.msg, "starting now, 5m late") || !m.w.NextStart.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("missed report %q for %s", m.msg, m.w.NextStart)
	}
	h.expectStarts(1, "back within grace")
	if s := h.expect(events.WindowStarted, 1, "late start")[0]; !strings.Contains(s.msg, "5m late") {
		t.Errorf("started: %q", s.msg)
	}
	h.restart()
	h.expect(events.WindowMissed, 1, "a second restart")
	h.expectStarts(1, "a second restart")
}

func TestSchedulerMissedBeyondGraceSkipped(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.grace = 10 * time.Minute
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *"})
	h.stop()
	h.setClock(t0.Add(2*time.Hour + 40*time.Minute))
	h.start()
	h.expectStarts(0, "back beyond grace")
	m := h.expect(events.WindowMissed, 1, "back beyond grace")[0]
	if !strings.Contains(m.msg, "skipped (40m late, beyond the 10m grace)") {
		t.Errorf("missed: %q", m.msg)
	}
	h.expect(events.WindowSkipped, 1, "the channel is told")
	if got := h.window(w.ID).NextStart; !got.Equal(t0.Add(26 * time.Hour)) {
		t.Errorf("NextStart = %s", got)
	}
}

func TestSchedulerDownForDaysReportsEachMissedStart(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	h.add(store.Window{Spec: "0 2 * * *"})
	h.stop()
	h.setClock(t0.Add(3*24*time.Hour + 2*time.Hour + 3*time.Minute)) // back on day 3 at 02:03
	h.start()
	ms := h.expect(events.WindowMissed, 4, "down for three days")
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
	h.expect(events.WindowOverrun, 0, "before the window ends")
	h.at(t0.Add(3*time.Hour + 10*time.Second))
	o := h.expect(events.WindowOverrun, 1, "at the window's end")[0]
	if o.run == nil || o.run.ID != "r-1" || !strings.Contains(o.msg, "still running after 1h") || !strings.Contains(o.msg, "03:00") {
		t.Errorf("overrun: %q run %+v", o.msg, o.run)
	}
	h.at(t0.Add(4 * time.Hour))
	h.restart()
	h.expect(events.WindowOverrun, 1, "reported once")

	// A run that ends within its window is not reported; and the next day's
	// start meets the cluster still busy with yesterday's run: skipped.
	h.at(t0.Add(26 * time.Hour))
	h.expectStarts(1, "cluster busy")
	sk := h.expect(events.WindowSkipped, 1, "cluster busy")[0]
	if !strings.Contains(sk.msg, "run r-1") || !strings.Contains(sk.msg, "busy") {
		t.Errorf("busy skip does not name the run holding the cluster: %q", sk.msg)
	}
	h.finishRuns()
	h.at(t0.Add(50 * time.Hour))
	h.expectStarts(2, "day 3")
	h.finishRuns()
	h.at(t0.Add(51 * time.Hour))
	h.expect(events.WindowOverrun, 1, "a run that finished in time")
}

func TestSchedulerSkipButton(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	ctx := context.Background()
	w := h.add(store.Window{Spec: "0 2 * * *", Announce: time.Hour})
	start := t0.Add(2 * time.Hour)
	h.at(t0.Add(time.Hour))
	a := h.expect(events.WindowAnnounced, 1, "announced")[0]
	if err := h.s.Skip(ctx, w.ID, start.Add(time.Minute), "U1"); err == nil || !strings.Contains(err.Error(), "not a start") {
		t.Errorf("skip a time that is no start: %v", err)
	}
	if err := h.s.Skip(ctx, w.ID, time.Unix(a.w.NextStart.Unix(), 0), "U1"); err != nil { // as the button sends it
		t.Fatal(err)
	}
	if err := h.s.Skip(ctx, w.ID, start, "U1"); err != nil {
		t.Fatal(err)
	}
	sk := h.expect(events.WindowSkipped, 1, "skip clicked twice")[0]
	if !strings.Contains(sk.msg, "as asked by U1") || sk.ev.By != "U1" || sk.ev.Reason != events.WindowAsked || strings.Contains(sk.msg, "<@") {
		t.Errorf("skip: %q %+v", sk.msg, sk.ev)
	}
	h.at(start)
	h.expectStarts(0, "skipped start")
	h.expect(events.WindowSkipped, 1, "at the skipped start")
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
	ap := h.expect(events.WindowApproval, 1, "at the start")[0]
	if !ap.w.NextStart.Equal(start) || !strings.Contains(ap.msg, "until") {
		t.Errorf("approval: %s %q", ap.w.NextStart, ap.msg)
	}
	h.at(start.Add(5 * time.Minute))
	h.restart()
	h.expect(events.WindowApproval, 1, "after a restart in the window")
	h.at(start.Add(10 * time.Minute))
	if err := h.s.Approve(ctx, w.ID, start, "U2"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Approve(ctx, w.ID, start, "U3"); err == nil {
		t.Error("a second Start click started nothing but was not refused")
	}
	h.expectStarts(1, "approved")
	if s := h.expect(events.WindowStarted, 1, "approved")[0]; !strings.Contains(s.msg, "approved by U2") || s.ev.By != "U2" {
		t.Errorf("started: %q", s.msg)
	}
	// The run is on U2's behalf: under four-eyes U2 may not approve it.
	h.mu.Lock()
	if req := h.requests[len(h.requests)-1]; req.OnBehalfOf != "U2" {
		t.Errorf("the approved window's run is on behalf of %q, want U2", req.OnBehalfOf)
	}
	h.mu.Unlock()
	h.finishRuns()

	// The next day nobody approves: skipped when the window closes.
	next := start.Add(24 * time.Hour)
	h.at(next)
	h.expect(events.WindowApproval, 2, "day 2")
	h.at(next.Add(time.Hour))
	sk := h.expect(events.WindowSkipped, 1, "nobody approved")[0]
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
	h.expect(events.WindowAnnounced, 0, "paused")
	h.expectStarts(0, "paused")
	h.expect(events.WindowMissed, 0, "paused")

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
	h.expect(events.WindowMissed, 0, "right after resume")
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
	h.setClock(time.Date(2026, 10, 24, 12, 0, 0, 0, loc))
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
	h.setClock(t0.Add(2*time.Hour + time.Minute + 30*time.Second))
	h.start() // NextStart was kept: a missed start within grace, not lost
	h.expect(events.WindowMissed, 1, "config window missed")
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
	for _, c := range []struct {
		w    store.Window
		want string
	}{
		{store.Window{ID: "bad", Spec: "0 25 * * *", Command: "start"}, "window bad: invalid cron expression \"0 25 * * *\": end of range (25) above maximum (23)"},
		{store.Window{ID: "typo", Spec: "0 2 * * *", Command: "maintian bakcup"}, `window typo: command "maintian bakcup": unknown procedure "maintian"`},
	} {
		opts := h.options()
		opts.ConfigWindows = []store.Window{c.w}
		if _, err := New(opts); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("invalid config window: %v, want one line with %q", err, c.want)
		}
	}
}

// Two replicas on one store: the compare-and-set on NextStart lets exactly
// one of them start the window.
func TestSchedulerTwoReplicasStartOnce(t *testing.T) {
	h := newSchedHarness(t, t0)
	h.start()
	w := h.add(store.Window{Spec: "0 2 * * *"})
	opts := h.options()
	opts.ConfigWindows = nil
	second, err := New(opts)
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

	h.setClock(t0.Add(2 * time.Hour))
	n := second.passes.Load()
	second.nudge()
	h.sync()
	for got := int64(0); got <= n; got = <-passed {
	}
	h.expectStarts(1, "two replicas")
	h.expect(events.WindowStarted, 1, "two replicas")
	if got := h.window(w.ID).NextStart; !got.Equal(t0.Add(26 * time.Hour)) {
		t.Errorf("NextStart = %s", got)
	}
}
