package procedures_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// waitAction waits until the world has seen action.
func waitAction(t *testing.T, w *proctest.World, action string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(w.Actions(), action) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q; actions %q", action, w.Actions())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func reached(t *testing.T, w *proctest.World, blk *proctest.Block, what string) {
	t.Helper()
	select {
	case <-blk.Reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never began: %q", what, w.Actions())
	}
}

// With StartParallelism 0 every node's image changes at once, in the
// upgrade and in its roll-back: while app-1's change hangs, app-2's and
// app-3's begin (and app-1 is still on its image until it finishes).
func TestSetImageNodesTogether(t *testing.T) {
	for _, tc := range []struct {
		name, image string
	}{{"upgrade", newImage}, {"rollback", oldImage}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, cluster3())
			h.parallel = 0
			h.restart(nil)
			var blk *proctest.Block
			if tc.name == "upgrade" {
				blk = h.world.BlockOn("set-image app-1")
				h.startRun(upgrade())
			} else {
				h.startRun(upgrade())
				cp := h.waitCheckpoint("verify")
				blk = h.world.BlockOn("set-image app-1")
				h.decide(cp, store.ActionRollback, "U2")
			}
			reached(t, h.world, blk, "app-1's image change")
			waitAction(t, h.world, "set-image app-2 "+tc.image)
			waitAction(t, h.world, "set-image app-3 "+tc.image)
			if got := h.world.NodeState("app-1"); got == "stopped "+tc.image {
				t.Fatalf("app-1 changed while its change was held: %s", got)
			}
			blk.Release()
			if tc.name == "upgrade" {
				h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
			}
			end := h.waitFinished()
			want := map[string]store.RunState{"upgrade": store.StateSucceeded, "rollback": store.StateRolledBack}[tc.name]
			if end.State != want {
				t.Fatalf("state %s: %s", end.State, end.Error)
			}
			for _, n := range []string{"app-1", "app-2", "app-3"} {
				if got := h.world.NodeState(n); got != "running "+tc.image {
					t.Errorf("%s: %s, want running %s", n, got, tc.image)
				}
			}
			checkSafe(t, h.world)
		})
	}
}

// StartParallelism bounds the image changes too: with 2, app-3's waits
// while app-1's and app-2's hang and begins once one of them is done;
// with 1 they go one by one.
func TestSetImageParallelismBound(t *testing.T) {
	for _, par := range []int{1, 2} {
		t.Run(fmt.Sprint(par), func(t *testing.T) {
			h := newHarness(t, cluster3())
			h.parallel = par
			h.restart(nil)
			held := []*proctest.Block{h.world.BlockOn("set-image app-1")}
			if par == 2 {
				held = append(held, h.world.BlockOn("set-image app-2"))
			}
			h.startRun(upgrade())
			for i, blk := range held {
				reached(t, h.world, blk, fmt.Sprintf("app-%d's image change", i+1))
			}
			next := fmt.Sprintf("set-image app-%d %s", par+1, newImage)
			time.Sleep(200 * time.Millisecond) // time for a change beyond the bound to begin, if it would
			if slices.Contains(h.world.Actions(), next) {
				t.Fatalf("more than %d image changes at once: %q", par, h.world.Actions())
			}
			held[0].Release()
			waitAction(t, h.world, next)
			for _, blk := range held[1:] {
				blk.Release()
			}
			h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
			if end := h.waitFinished(); end.State != store.StateSucceeded {
				t.Fatalf("state %s: %s", end.State, end.Error)
			}
			checkSafe(t, h.world)
		})
	}
}

// Two nodes whose change fails are both named in the step's failure; the
// node that changed keeps its new image, a retry changes only the two,
// and a roll-back from there puts every node back.
func TestSetImageNamesEveryFailedNode(t *testing.T) {
	for _, decision := range []store.Action{store.ActionRetry, store.ActionRollback} {
		t.Run(string(decision), func(t *testing.T) {
			h := newHarness(t, cluster3())
			h.parallel = 0
			h.restart(nil)
			h.world.Fail("set-image app-1", 1)
			h.world.Fail("set-image app-3", 1)
			h.startRun(upgrade())
			cp := h.waitCheckpoint("failure")
			q := cp.Checkpoint.Question
			if cp.Steps[cp.Current].Name != "set-image" {
				t.Fatalf("failed at %s: %q", cp.Steps[cp.Current].Name, q)
			}
			for _, n := range []string{"app-1", "app-3"} {
				if !strings.Contains(q, n+`: injected failure of "set-image `+n+`"`) {
					t.Errorf("question does not name %s's failure: %q", n, q)
				}
			}
			if strings.Contains(q, "app-2: ") {
				t.Errorf("question names app-2, whose change worked: %q", q)
			}
			states := map[string]string{"app-1": "stopped " + oldImage, "app-2": "stopped " + newImage, "app-3": "stopped " + oldImage}
			for n, want := range states {
				if got := h.world.NodeState(n); got != want {
					t.Errorf("%s after the failures: %s, want %s", n, got, want)
				}
			}
			n := len(h.world.Actions())
			h.decide(cp, decision, "U2")
			if decision == store.ActionRetry {
				h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
			}
			end := h.waitFinished()
			checkSafe(t, h.world)
			var changed []string
			for _, a := range h.world.Actions()[n:] {
				if strings.HasPrefix(a, "set-image ") {
					changed = append(changed, a)
				}
			}
			slices.Sort(changed)
			want, image, state := []string{"set-image app-1 " + newImage, "set-image app-3 " + newImage}, newImage, store.StateSucceeded
			if decision == store.ActionRollback {
				// Only app-2 left its image; app-1 and app-3 never did.
				want, image, state = []string{"set-image app-2 " + oldImage}, oldImage, store.StateRolledBack
			}
			if !slices.Equal(changed, want) {
				t.Errorf("image changes after %s: %q, want %q", decision, changed, want)
			}
			if end.State != state {
				t.Fatalf("state %s: %s", end.State, end.Error)
			}
			for _, n := range []string{"app-1", "app-2", "app-3"} {
				if got := h.world.NodeState(n); got != "running "+image {
					t.Errorf("%s at the end: %s, want running %s", n, got, image)
				}
			}
		})
	}
}

// A running node is found before any image changes: every running node
// is named and no node is touched, not even those listed before it.
func TestSetImageRefusesBeforeAnyChange(t *testing.T) {
	h := newHarness(t, cluster3())
	h.parallel = 0
	h.restart(nil)
	blk := h.world.BlockOn("backup")
	h.startRun(upgrade())
	reached(t, h.world, blk, "the backup")
	for _, n := range []string{"app-2", "app-3"} {
		if err := h.world.Start(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	blk.Release()
	cp := h.waitCheckpoint("failure")
	if q := cp.Checkpoint.Question; !strings.Contains(q, "app-2, app-3 are running: refusing to change images") || cp.Steps[cp.Current].Name != "set-image" {
		t.Fatalf("step %s, question %q", cp.Steps[cp.Current].Name, q)
	}
	if slices.ContainsFunc(h.world.Actions(), func(a string) bool { return strings.HasPrefix(a, "set-image") }) {
		t.Fatalf("images changed while nodes ran: %q", h.world.Actions())
	}
}

// The step reports one line per node as it finishes, counted in order,
// and the step's recorded progress is always the last line published.
func TestSetImageProgressLines(t *testing.T) {
	h := newHarness(t, cluster3())
	h.parallel = 0
	h.restart(nil)
	h.startRun(upgrade())
	end := h.waitCheckpoint("verify")
	step := slices.IndexFunc(end.Steps, func(s store.Step) bool { return s.Name == "set-image" })
	var lines []string
	h.mu.Lock()
	for _, ev := range h.events {
		if ev.Kind != events.StepProgress || ev.Step != step {
			continue
		}
		if ev.Run.Steps[step].Progress != ev.Message {
			t.Errorf("event %q carries progress %q", ev.Message, ev.Run.Steps[step].Progress)
		}
		lines = append(lines, ev.Message)
	}
	h.mu.Unlock()
	if len(lines) != 4 || lines[0] != "changing the image of app-1, app-2, app-3 together" {
		t.Fatalf("progress lines %q", lines)
	}
	var nodes []string
	for i, l := range lines[1:] {
		node, rest, _ := strings.Cut(l, " → ")
		if rest != fmt.Sprintf("%s (%d/3)", newImage, i+1) {
			t.Errorf("line %d: %q", i+1, l)
		}
		nodes = append(nodes, node)
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"app-1", "app-2", "app-3"}) {
		t.Errorf("lines name %q, want each node once", nodes)
	}
	if d := end.Steps[step].Detail; d != "3 nodes on "+newImage {
		t.Errorf("step detail %q", d)
	}
}

// A crash while the nodes change together leaves some changed and one
// not: the new engine asks before repeating the step, and the retry
// changes only the node that was left, without a safety rule broken.
func TestSetImageCrashMidway(t *testing.T) {
	h := newHarness(t, cluster3())
	h.parallel = 0
	h.restart(nil)
	blk := h.world.BlockOn("set-image app-2")
	h.startRun(upgrade())
	reached(t, h.world, blk, "app-2's image change")
	for _, n := range []string{"app-1", "app-3"} {
		deadline := time.Now().Add(10 * time.Second)
		for h.world.NodeState(n) != "stopped "+newImage {
			if time.Now().After(deadline) {
				t.Fatalf("%s never changed: %s", n, h.world.NodeState(n))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	h.stop() // the crash: app-2's change never happens
	if got := h.world.NodeState("app-2"); got != "stopped "+oldImage {
		t.Fatalf("app-2 after the crash: %s", got)
	}
	n := len(h.world.Actions())
	h.start(nil)
	end, kinds := h.drive()
	if len(kinds) == 0 || kinds[0] != "interrupted" {
		t.Fatalf("questions %v, want interrupted first", kinds)
	}
	if end.State != store.StateSucceeded {
		t.Fatalf("state %s: %s", end.State, end.Error)
	}
	var changed []string
	for _, a := range h.world.Actions()[n:] {
		if strings.HasPrefix(a, "set-image ") {
			changed = append(changed, a)
		}
	}
	if !slices.Equal(changed, []string{"set-image app-2 " + newImage}) {
		t.Errorf("image changes after the crash: %q", changed)
	}
	for _, node := range []string{"app-1", "app-2", "app-3"} {
		if got := h.world.NodeState(node); got != "running "+newImage {
			t.Errorf("%s at the end: %s", node, got)
		}
	}
	checkSafe(t, h.world)
}
