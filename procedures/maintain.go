package procedures

import (
	"context"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/store"
)

// In-app maintenance: scale down to one node (plugin changes and the
// backup plugin's task state live in one node's memory), take a safety
// backup, do the work, let a person verify, start the others.

func maintainSteps(r *store.Run) []stepDef {
	steps := []stepDef{
		{name: "preflight", title: "Preflight: nodes, backup possible", idempotent: true, do: maintainPreflight},
		{name: "scale-down", title: "Scale down to one node", idempotent: true, do: scaleDown},
		{name: "backup", title: "Back up database and storage, verify the backup", idempotent: true, do: backupStep},
	}
	manual := true
	for i, a := range actionsOf(r.Params) {
		if a.Kind == "backup" {
			manual = false // the backup step above is the action
			continue
		}
		manual = false
		steps = append(steps, actionStep(i, a))
	}
	if manual {
		steps = append(steps, stepDef{name: "manual", title: "Maintenance window: do the work in NocoBase", checkpoint: "manual",
			question: func(rc *runCtx) (string, string) {
				return fmt.Sprintf("%s runs on one node (%s). Do your maintenance in NocoBase now, then press Continue when done.",
					rc.x.run.Cluster, rc.fact("first_node")), rc.fact("first_url")
			}})
	}
	return append(steps,
		stepDef{name: "verify", title: "Verify checkpoint", checkpoint: "verify", question: func(rc *runCtx) (string, string) {
			return fmt.Sprintf("Check that NocoBase works on %s, then continue (start the other nodes), roll back (restore backup %s) or abort.",
				rc.fact("first_node"), rc.fact("backup")), rc.fact("first_url")
		}},
		stepDef{name: "start-rest", title: "Start the other nodes one by one, each healthy", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return startRest(ctx, rc, "") }},
	)
}

func maintainRollbackSteps() []stepDef {
	return []stepDef{
		{name: "rb-stop-nodes", title: "Roll back: stop all app nodes", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return stopNodes(ctx, rc, "") }},
		{name: "rb-restore", title: "Roll back: restore the database and storage from the safety backup", do: restoreStep,
			skip: func(r *store.Run) bool { return r.Fact("backup") == "" }},
		{name: "rb-start-first", title: "Roll back: start one node, wait until healthy", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) {
				return startAndWait(ctx, rc, rc.fact("first_node"), "")
			}},
		{name: "rb-start-rest", title: "Roll back: start the other nodes one by one", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return startRest(ctx, rc, "") }},
	}
}

func actionStep(i int, a MaintAction) stepDef {
	name := fmt.Sprintf("action-%d", i+1)
	switch a.Kind {
	case "restore":
		return stepDef{name: name, title: "Restore backup " + a.Arg, do: func(ctx context.Context, rc *runCtx) (string, error) {
			return restoreAction(ctx, rc, a.Arg)
		}}
	default:
		// enable and disable may be repeated; add may not (NocoBase
		// refuses to add a plugin twice), so an interrupted add asks.
		return stepDef{name: name, title: "Plugin " + a.Kind + " " + a.Arg, idempotent: a.Kind != "add",
			do: func(ctx context.Context, rc *runCtx) (string, error) {
				node, _, err := firstNode(ctx, rc)
				if err != nil {
					return "", err
				}
				if err := rc.c.App.Plugin(ctx, node, a.Kind, a.Arg, rc.progress); err != nil {
					return "", fmt.Errorf("plugin %s %s on %s: %w", a.Kind, a.Arg, node.Name, err)
				}
				return fmt.Sprintf("%s: plugin %s %sd, node healthy", node.Name, a.Arg, a.Kind), nil
			}}
	}
}

func maintainPreflight(ctx context.Context, rc *runCtx) (string, error) {
	nodes, err := listNodes(ctx, rc)
	if err != nil {
		return "", err
	}
	rc.setFact("first_node", nodes[0].Name)
	rc.setFact("first_url", nodes[0].URL)
	if rc.fact("from_version") == "" {
		rc.setFact("from_version", currentVersion(ctx, rc, nodes))
	}
	for _, a := range actionsOf(rc.x.run.Params) {
		if a.Kind != "restore" {
			continue
		}
		if _, err := rc.c.Backups.Verify(ctx, a.Arg); err != nil {
			return "", fmt.Errorf("backup %s cannot be restored: %w", a.Arg, err)
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := rc.c.Backups.Check(bctx); err != nil {
		return "", fmt.Errorf("a backup could not be taken: %w", err)
	}
	return fmt.Sprintf("%d nodes; version %s; backup destination ready", len(nodes), rc.fact("from_version")), nil
}

// scaleDown leaves exactly the first node running and healthy.
func scaleDown(ctx context.Context, rc *runCtx) (string, error) {
	first, _, err := firstNode(ctx, rc)
	if err != nil {
		return "", err
	}
	stopped, err := stopNodes(ctx, rc, first.Name)
	if err != nil {
		return "", err
	}
	up, err := startAndWait(ctx, rc, first.Name, "")
	if err != nil {
		return "", err
	}
	return stopped + "; " + up, nil
}

// restoreAction restores a chosen backup: the node is stopped so nothing
// writes while the database is replaced, and started again after.
func restoreAction(ctx context.Context, rc *runCtx, id string) (string, error) {
	first, _, err := firstNode(ctx, rc)
	if err != nil {
		return "", err
	}
	if _, err := stopNodes(ctx, rc, ""); err != nil {
		return "", err
	}
	if err := rc.c.Backups.Restore(ctx, id, rc.progress); err != nil {
		return "", fmt.Errorf("restore %s: %w", id, err)
	}
	up, err := startAndWait(ctx, rc, first.Name, "")
	if err != nil {
		return "", err
	}
	return "restored " + id + "; " + up, nil
}
