package procedures_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// hangingNodes is a Docker engine that stops answering once hang is set:
// every call waits until its context ends.
type hangingNodes struct {
	ports.Nodes
	hang atomic.Bool
}

func (n *hangingNodes) wait(ctx context.Context) error {
	if !n.hang.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (n *hangingNodes) List(ctx context.Context) ([]ports.Node, error) {
	if err := n.wait(ctx); err != nil {
		return nil, err
	}
	return n.Nodes.List(ctx)
}

func (n *hangingNodes) Cleanup(ctx context.Context) ([]string, error) {
	if err := n.wait(ctx); err != nil {
		return nil, err
	}
	return n.Nodes.Cleanup(ctx)
}

// An abort of a run that changed nothing (its preflight failed) ends the
// run and frees the cluster at once, even with the Docker engine no
// longer answering: there is nothing to settle.
func TestAbortOfAnUntouchedRunEndsAtOnce(t *testing.T) {
	hn := &hangingNodes{}
	h := newHarnessWith(t, cluster3(), func(c *procedures.Cluster) { hn.Nodes = c.Nodes; c.Nodes = hn })
	h.world.Fail("pull", 1)
	h.startRun(upgrade())
	r := h.waitCheckpoint("failure")
	hn.hang.Store(true)
	began := time.Now()
	h.decide(r, store.ActionAbort, "U2")
	end := h.waitFinished()
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("the abort took %s", took)
	}
	if end.State != store.StateAborted || !strings.Contains(procedures.Summary(end), "Nothing was changed") {
		t.Fatalf("state %s, summary %q", end.State, procedures.Summary(end))
	}
	if _, err := h.store.ActiveRun(context.Background(), "prod"); err == nil {
		t.Fatal("the cluster is still held")
	}
}

// A maintenance window's run whose preflight fails ends aborted by
// itself, audited, instead of holding the cluster for an answer.
func TestWindowRunEndsWhenItsPreflightFails(t *testing.T) {
	h := newHarness(t, cluster3())
	h.world.Fail("pull", 1)
	req := upgrade()
	req.Requester, req.Via = "scheduler:w1", "scheduler"
	r := h.startRun(req)
	end := h.waitFinished()
	if end.State != store.StateAborted || !strings.Contains(procedures.Summary(end), "Aborted by scheduler") ||
		!strings.Contains(procedures.Summary(end), "Nothing was changed") {
		t.Fatalf("state %s, summary %q", end.State, procedures.Summary(end))
	}
	if end.Steps[0].Status != store.StepFailed || !strings.Contains(end.Steps[0].Detail, "injected failure") {
		t.Fatalf("preflight: %+v", end.Steps[0])
	}
	audit, err := h.store.Audit(context.Background(), store.AuditQuery{RunID: r.ID})
	if err != nil || len(audit) != 1 || audit[0].User != "scheduler" || !strings.Contains(audit[0].Outcome, "next start tries again") {
		t.Fatalf("audit %+v, %v", audit, err)
	}
	// A person's run is asked, as before.
	h.world.Fail("pull", 1)
	h.startRun(upgrade())
	h.waitCheckpoint("failure")
}
