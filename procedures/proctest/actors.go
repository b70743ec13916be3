package proctest

import (
	"slices"
	"time"

	"github.com/nocobot/nocobot/procedures"
)

// As returns the cluster as one engine (who) sees it: the same nodes,
// database and balancer as every other engine's, with every action it
// takes logged under its name (see Log).
func (w *World) As(who, name string) *procedures.Cluster {
	a := actor{w: w, who: who}
	c := &procedures.Cluster{Name: name, Nodes: a, App: a, Backups: backups{a}, Balancer: a,
		HealthTimeout: time.Minute, CheckpointTimeout: time.Hour}
	w.mu.Lock()
	if w.redis.on {
		c.Redis = redisActor{a}
	}
	w.mu.Unlock()
	return c
}

// actor is the world's adapters as used by one engine.
type actor struct {
	w   *World
	who string
}

// Entry is one outside action, by whom and when; an action that was
// blocked also logs its return ("returned: <action>").
type Entry struct {
	Who, Action string
	At          time.Time
}

// Log returns every outside action so far, by every engine, in order.
func (w *World) Log() []Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.log)
}

func (w *World) logReturn(who, action string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, Entry{Who: who, Action: "returned: " + action, At: time.Now()})
}

// ActedAfterTakeover returns old's actions logged after new's first one:
// none when old stopped before new took the run over.
func (w *World) ActedAfterTakeover(old, new string) []Entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := slices.IndexFunc(w.log, func(e Entry) bool { return e.Who == new })
	if first < 0 {
		return nil
	}
	var out []Entry
	for _, e := range w.log[first:] {
		if e.Who == old {
			out = append(out, e)
		}
	}
	return out
}
