package procedures

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/store"
)

// Plan says, step by step, what a run of req would do, with the cluster's
// nodes and images when the engine can reach them. It changes nothing.
func (e *Engine) Plan(ctx context.Context, req Request) (string, error) {
	if err := req.Validate(); err != nil {
		return "", err
	}
	c, ok := e.clusters[req.Cluster]
	if !ok {
		return "", fmt.Errorf("unknown cluster %q (known: %s)", req.Cluster, strings.Join(e.ClusterNames(), ", "))
	}
	r := store.Run{Cluster: req.Cluster, Procedure: req.Procedure, Params: req.params()}
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for the %s (nothing is changed):\n", Title(r))

	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	nodes, err := c.Nodes.List(lctx)
	cancel()
	switch {
	case err != nil:
		fmt.Fprintf(&b, "Note: the nodes could not be listed (%v); the plan below is generic.\n", err)
	case len(nodes) == 0:
		b.WriteString("Note: no app nodes match the configured selector: the run would fail at preflight.\n")
	default:
		b.WriteString("Nodes, in the order used (the first starts alone):\n")
		for _, n := range nodes {
			fmt.Fprintf(&b, "  - %s: %s, %s\n", n.Name, n.State, n.Image)
		}
		fmt.Fprintf(&b, "Migrations: %s\n", migrationsPlan(c, nodes, req))
		if p, _ := lookup(req.Procedure); p.plan != nil {
			p.plan(ctx, &b, c, nodes, req)
		}
		if stopped, ok := backupTakenStopped(forwardSteps(&r)); ok {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			fmt.Fprintf(&b, "Backup: %s\n", backupPlan(pctx, c, stopped))
			cancel()
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		fmt.Fprintf(&b, "Redis: %s\n", redisPlan(rctx, c))
		cancel()
	}
	for i, d := range forwardSteps(&r) {
		line := d.title
		if d.checkpoint != "" {
			line += " — waits for a person: continue, roll back or abort"
		}
		fmt.Fprintf(&b, "%2d. %s\n", i+1, line)
	}
	if rb := rollbackSteps(&r); len(rb) > 0 {
		b.WriteString("On roll back:\n")
		for i, d := range rb {
			fmt.Fprintf(&b, "R%d. %s\n", i+1, strings.TrimPrefix(d.title, "Roll back: "))
		}
	}
	return strings.TrimRight(b.String(), "\n"), nil
}

// backupTakenStopped: whether the steps take a backup, and whether every
// node is stopped by then.
func backupTakenStopped(steps []stepDef) (stopped, ok bool) {
	for _, d := range steps {
		switch d.name {
		case "stop-nodes":
			stopped = true
		case "backup":
			return stopped, true
		}
	}
	return false, false
}
