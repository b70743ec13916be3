package slack

import (
	"context"
	"time"

	"github.com/nocobot/nocobot/events"
)

// render reads the engine's events and hands each to its run's thread.
// It never blocks on Slack: apply only records state.
func (f *Front) render(ctx context.Context, sub *events.Subscription) {
	f.catchUp(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if ev.Window != nil {
				f.goWork(func(ctx context.Context) { f.windowEvent(ctx, ev) })
				continue
			}
			if ev.Run.ID == "" {
				continue
			}
			t := f.threadFor(ev.Run.ID)
			t.apply(ev)
			t.poke()
		}
	}
}

// catchUp renders the unfinished runs as they are now: after a restart
// their threads are edited (their notes name the messages), and runs
// that began while the bot was away get one.
func (f *Front) catchUp(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	runs, err := f.eng.UnfinishedRuns(c)
	cancel()
	if err != nil {
		f.log.Warn().Err(err).Msg("slack: could not list unfinished runs to catch up")
		return
	}
	for _, r := range runs {
		t := f.threadFor(r.ID)
		t.showRecorded(r)
		t.poke()
	}
}

// threadFor returns the run's thread, starting its loop if new.
func (f *Front) threadFor(runID string) *thread {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.threads[runID]; ok {
		return t
	}
	t := newThread(f, runID)
	f.threads[runID] = t
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t.loop(f.base)
	}()
	return t
}

// bindRun records which channel the command that started a run came
// from (the run's thread goes there unless its cluster has a channel).
func (f *Front) bindRun(runID, channel string) {
	f.mu.Lock()
	f.bound[runID] = channel
	t := f.threads[runID]
	f.mu.Unlock()
	if t != nil {
		t.poke()
	}
}
