package slack

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"time"

	"github.com/nocobot/nocobot/store"
)

// noteScope is where a run's thread (channel and message ts's) is kept
// in the store, so that a restarted bot edits the thread it started.
const noteScope = "slack"

// threadNote is the persisted form of a thread.
type threadNote struct {
	Channel string            `json:"channel"`
	Msgs    map[string]string `json:"msgs"` // slot key → message ts; "root" is the root
	// CPs are the checkpoints shown, so a restarted bot can still show
	// who decided one after the run has moved on.
	CPs map[string]store.Checkpoint `json:"cps,omitempty"`
}

// resolve finds the thread's channel and the messages it already has.
func (t *thread) resolve(ctx context.Context) bool {
	t.mu.Lock()
	ok, loaded := t.channel != "", t.loaded
	run := t.view.Run
	t.mu.Unlock()
	if ok {
		return true
	}
	f := t.f
	if !loaded {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		raw, err := f.eng.GetNote(c, noteScope, t.runID)
		cancel()
		var n threadNote
		if err == nil && json.Unmarshal([]byte(raw), &n) == nil && n.Channel != "" {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			ds, _ := f.eng.Decisions(c, t.runID)
			cancel()
			t.mu.Lock()
			t.channel, t.loaded = n.Channel, true
			t.known = n.Msgs
			if t.known == nil {
				t.known = map[string]string{}
			}
			for id, cp := range n.CPs {
				if _, ok := t.view.Questions[id]; !ok && t.known["cp:"+id] != "" {
					t.view.Ask(cp)
					t.ensure("cp:"+id, false)
				}
			}
			// Decisions taken while the bot was away.
			for _, d := range ds {
				t.view.Decide(d)
			}
			for _, s := range t.slots {
				if s.ts == "" {
					s.ts = t.known[s.key]
				}
			}
			t.mu.Unlock()
			return true
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			f.log.Warn().Err(err).Str("run", t.runID).Msg("slack: could not read the thread note; retrying")
			return false
		}
		t.mu.Lock()
		t.loaded = true
		t.mu.Unlock()
	}
	ch := ""
	if cl, ok := f.cfg.Cluster(run.Cluster); ok && cl.Slack.Channel != "" {
		ch = cl.Slack.Channel
	}
	if ch == "" && run.Via == "slack" {
		f.mu.Lock()
		ch = f.bound[t.runID]
		f.mu.Unlock()
		t.mu.Lock()
		if t.resolving.IsZero() {
			t.resolving = time.Now()
		}
		waited := time.Since(t.resolving)
		t.mu.Unlock()
		if ch == "" && waited < 10*time.Second {
			return false // the command that started it binds it in a moment
		}
	}
	if ch == "" && len(f.cfg.Access.Slack.Channels) > 0 {
		ch = f.cfg.Access.Slack.Channels[0]
	}
	if ch == "" {
		f.log.Warn().Str("run", t.runID).Str("cluster", run.Cluster).Msg("slack: no channel to render this run in (set the cluster's channel)")
		t.mu.Lock()
		for _, s := range t.slots {
			s.dropped = true
		}
		t.channel = "-"
		t.mu.Unlock()
		return false
	}
	t.mu.Lock()
	t.channel = ch
	t.mu.Unlock()
	return true
}

// save records the thread so a restarted bot edits it.
func (t *thread) save(ctx context.Context) {
	t.mu.Lock()
	n := threadNote{Channel: t.channel, Msgs: maps.Clone(t.known), CPs: map[string]store.Checkpoint{}}
	for _, s := range t.slots {
		if s.ts != "" {
			n.Msgs[s.key] = s.ts
		}
	}
	for id, q := range t.view.Questions {
		if n.Msgs["cp:"+id] != "" {
			n.CPs[id] = q.Checkpoint
		}
	}
	t.mu.Unlock()
	raw, _ := json.Marshal(n)
	// Even during shutdown: a posted message the note forgets would be
	// posted again by the next bot.
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := t.f.eng.PutNote(c, noteScope, t.runID, string(raw)); err != nil {
		t.f.log.Warn().Err(err).Str("run", t.runID).Msg("slack: could not save the thread note")
	}
}
