package procedures

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// PlanView is what a run of a request would do, as data: the text of
// Plan and nocobot plan --json both come from it.
type PlanView struct {
	Cluster, Procedure, Title string
	// Nodes are listed in the order used (the first starts alone); nil
	// when NodesErr says why they could not be listed.
	Nodes    []ports.Node
	NodesErr error
	// Migrations, Details and Backup are said only when the nodes are known.
	Migrations string
	Details    []string // the procedure's own lines (e.g. the images an upgrade pulls)
	Backup     string   // how the backup would be taken; "" when the run takes none
	Redis      string   // what is done to the cluster's Redis databases, "none" without them
	Steps      []PlanStep
	Rollback   []PlanStep // the steps a roll back takes
}

// planNoter is a Nodes adapter with something of its own to say in the
// plan (Kubernetes: the autoscaler it holds while nodes are down).
type planNoter interface {
	PlanNote(ctx context.Context) string
}

// PlanStep is one numbered step of a plan.
type PlanStep struct {
	Title string
	// Checkpoint: the run waits there for a person's decision.
	Checkpoint bool
}

// PlanOf says, step by step, what a run of req would do, with the
// cluster's nodes and images when the engine can reach them. It changes
// nothing.
func (e *Engine) PlanOf(ctx context.Context, req Request) (PlanView, error) {
	if err := req.Validate(); err != nil {
		return PlanView{}, err
	}
	c, ok := e.clusters[req.Cluster]
	if !ok {
		return PlanView{}, fmt.Errorf("unknown cluster %q (known: %s)", req.Cluster, strings.Join(e.ClusterNames(), ", "))
	}
	r := store.Run{Cluster: req.Cluster, Procedure: req.Procedure, Params: runParams(c, req)}
	p := PlanView{Cluster: req.Cluster, Procedure: req.Procedure, Title: Title(r)}

	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	p.Nodes, p.NodesErr = c.Nodes.List(lctx)
	cancel()
	if p.NodesErr == nil && len(p.Nodes) > 0 {
		p.Migrations = migrationsPlan(c, p.Nodes, req)
		if proc, _ := lookup(req.Procedure); proc.plan != nil {
			var b strings.Builder
			proc.plan(ctx, &b, c, p.Nodes, req)
			for l := range strings.SplitSeq(strings.TrimRight(b.String(), "\n"), "\n") {
				if l != "" {
					p.Details = append(p.Details, l)
				}
			}
		}
		if stopped, ok := backupTakenStopped(forwardSteps(&r)); ok {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			p.Backup = backupPlan(pctx, c, stopped)
			cancel()
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		p.Redis = redisPlan(rctx, c)
		cancel()
		if pn, ok := c.Nodes.(planNoter); ok {
			nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if l := pn.PlanNote(nctx); l != "" {
				p.Details = append(p.Details, l)
			}
			cancel()
		}
	}
	for _, d := range forwardSteps(&r) {
		p.Steps = append(p.Steps, PlanStep{Title: d.title, Checkpoint: d.checkpoint != ""})
	}
	for _, d := range rollbackSteps(&r) {
		p.Rollback = append(p.Rollback, PlanStep{Title: strings.TrimPrefix(d.title, "Roll back: ")})
	}
	return p, nil
}

// Plan is PlanOf in words.
func (e *Engine) Plan(ctx context.Context, req Request) (string, error) {
	p, err := e.PlanOf(ctx, req)
	if err != nil {
		return "", err
	}
	return p.Text(), nil
}

// Text is the plan as people read it.
func (p PlanView) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for the %s (nothing is changed):\n", p.Title)
	switch {
	case p.NodesErr != nil:
		fmt.Fprintf(&b, "Note: the nodes could not be listed (%v); the plan below is generic.\n", p.NodesErr)
	case len(p.Nodes) == 0:
		b.WriteString("Note: no app nodes match the configured selector: the run would fail at preflight.\n")
	default:
		b.WriteString("Nodes, in the order used (the first starts alone):\n")
		for _, n := range p.Nodes {
			fmt.Fprintf(&b, "  - %s: %s, %s\n", n.Name, n.State, n.Image)
		}
		fmt.Fprintf(&b, "Migrations: %s\n", p.Migrations)
		for _, l := range p.Details {
			b.WriteString(l + "\n")
		}
		if p.Backup != "" {
			fmt.Fprintf(&b, "Backup: %s\n", p.Backup)
		}
		if p.Redis != "" {
			fmt.Fprintf(&b, "Redis: %s\n", p.Redis)
		}
	}
	for i, s := range p.Steps {
		line := s.Title
		if s.Checkpoint {
			line += " — waits for a person: continue, roll back or abort"
		}
		fmt.Fprintf(&b, "%2d. %s\n", i+1, line)
	}
	if len(p.Rollback) > 0 {
		b.WriteString("On roll back:\n")
		for i, s := range p.Rollback {
			fmt.Fprintf(&b, "R%d. %s\n", i+1, s.Title)
		}
	}
	return strings.TrimRight(b.String(), "\n")
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
