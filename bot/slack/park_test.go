package slack

import (
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// A thread whose channel refuses the bot is tried again after 1, 2, 4 …
// minutes, then hourly, and no more after 24 hours: one warning is
// logged and a note in the operators' channel says so. An invitation
// still posts the whole thread at once.
func TestParkedThreadBacksOffThenGivesUp(t *testing.T) {
	clock := &parkClock{Clock: proctest.NewClock(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))}
	h := newHarness(t, "http", withOptions(func(o *Options) { o.Clock = clock }))
	var invited atomic.Bool
	var tries atomic.Int32
	h.fs.mu.Lock()
	h.fs.refuse = func(method string, f url.Values) string {
		if invited.Load() || f.Get("channel") != chProd || !strings.HasPrefix(method, "chat.") || method == "chat.getPermalink" {
			return ""
		}
		if method == "chat.postMessage" {
			tries.Add(1)
		}
		return "not_in_channel"
	}
	h.fs.mu.Unlock()

	h.command(uRequest, chProd, "upgrade 1.7.14")
	// The command is answered (through response_url: the channel refuses
	// the bot) once it bound the run to its channel, which wakes the thread.
	h.fs.waitFor("the command's answer", func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "response_url" && strings.Contains(c.Text(), "Started run") {
				return true
			}
		}
		return false
	})
	run := h.waitState(h.onlyRun().ID, store.StateWaiting)
	var away apiCall
	h.fs.waitFor("the checkpoint in the operators' channel", func(cs []apiCall) bool {
		for _, c := range cs {
			if c.Method == "chat.postMessage" && c.Channel() == chOps && strings.Contains(c.Text(), "cannot post its thread") && len(c.Buttons()) == 3 {
				away = c
				return true
			}
		}
		return false
	})
	note := func() []apiCall {
		var out []apiCall
		for _, c := range h.fs.Calls("chat.postMessage") {
			if c.Channel() == chOps && strings.Contains(c.Text(), "I have stopped trying") {
				out = append(out, c)
			}
		}
		return out
	}
	// advance moves the clock on and reports whether the thread was
	// tried again: its timer was due, and it waits anew (or gave up).
	advance := func(d time.Duration) bool {
		t.Helper()
		due, waits := clock.next()
		if clock.Now().Add(d).Before(due) {
			clock.Advance(d)
			return false
		}
		before := tries.Load()
		clock.Advance(d)
		deadline := time.Now().Add(10 * time.Second)
		for clock.waits() == waits && len(note()) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the parked thread neither waits again nor gave up")
			}
			time.Sleep(time.Millisecond)
		}
		return tries.Load() > before
	}
	// The thread is idle once it set its timer after showing the
	// checkpoint elsewhere: nothing else wakes it.
	for deadline := time.Now().Add(10 * time.Second); !clock.setAfter(away.At); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the parked thread set no timer")
		}
	}
	if advance(59 * time.Second) {
		t.Fatal("tried again before a minute")
	}
	var got []int // minutes since the first refusal
	if advance(time.Second) {
		got = append(got, 1)
	}
	minute := 1
	for len(note()) == 0 && minute < 3*24*60 {
		minute++
		if advance(time.Minute) {
			got = append(got, minute)
		}
	}
	want := []int{1, 3, 7, 15, 31, 63}
	for m := 123; m < 24*60; m += 60 {
		want = append(want, m)
	}
	want = append(want, 24*60) // the last try, at the limit
	if !slices.Equal(got, want) {
		t.Fatalf("retries at minutes %v, want %v", got, want)
	}
	notes := note()
	if len(notes) != 1 {
		t.Fatalf("%d notes that the thread is no longer tried", len(notes))
	}
	for _, s := range []string{"Run `" + run.ID + "` on prod", "<#" + chProd + ">", "for 24 h", "not_in_channel", "`/invite @nocobot`", "`nocobot attach " + run.ID + "`"} {
		if !strings.Contains(notes[0].Text(), s) {
			t.Fatalf("the note lacks %q: %q", s, notes[0].Text())
		}
	}
	if n := strings.Count(h.logs.String(), "is no longer retried"); n != 1 {
		t.Fatalf("%d warnings that the thread is no longer retried:\n%s", n, h.logs.String())
	}
	// Given up: no timer is set to try it again, however long it waits.
	due, waits := clock.next()
	clock.Advance(72 * time.Hour)
	if _, w := clock.next(); w != waits || !due.Before(clock.Now().Add(-71*time.Hour)) {
		t.Fatalf("a timer after giving up: %s (%d, then %d)", due, waits, w)
	}

	// Invited: the whole thread appears at once, its checkpoint with buttons.
	invited.Store(true)
	h.event(map[string]any{"type": "member_joined_channel", "user": botUser, "channel": chProd, "channel_type": "C", "team": "T1", "inviter": uRequest})
	root := h.rootOf(chProd, "Upgrade of prod")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	if len(cp.Buttons()) != 3 {
		t.Fatalf("buttons: %v", cp.Buttons())
	}
	if len(note()) != 1 {
		t.Fatal("a second note after the invitation")
	}
}

// parkClock is the test clock; it tells when the thread's latest timer
// is due and how many it has set.
type parkClock struct {
	*proctest.Clock
	mu  sync.Mutex
	due time.Time
	n   int
	set time.Time // when the latest timer was set, in real time
}

func (c *parkClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.due, c.n, c.set = c.Now().Add(d), c.n+1, time.Now()
	return c.Clock.After(d)
}

func (c *parkClock) setAfter(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.After(t)
}

func (c *parkClock) next() (time.Time, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.due, c.n
}

func (c *parkClock) waits() int {
	_, n := c.next()
	return n
}
