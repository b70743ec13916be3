package procedures

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/store"
)

// First start: one node installs (or upgrades) and enables the plugins;
// only then may the others start.

func firstStartSteps() []stepDef {
	return []stepDef{
		{name: "preflight", title: "Preflight: find the nodes", idempotent: true, do: func(ctx context.Context, rc *runCtx) (string, error) {
			nodes, err := listNodes(ctx, rc)
			if err != nil {
				return "", err
			}
			rc.setFact("first_node", nodes[0].Name)
			rc.setFact("first_url", nodes[0].URL)
			return fmt.Sprintf("%d nodes; %s starts first", len(nodes), nodes[0].Name), nil
		}},
		{name: "start-first", title: "Start one node, wait until healthy (plugins installed and enabled)", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) {
				return startAndWait(ctx, rc, rc.fact("first_node"), "")
			}},
		{name: "start-rest", title: "Start the other nodes one by one, each healthy", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return startRest(ctx, rc, "") }},
		{name: "lb-normal", title: "Load balancer on: traffic to the app nodes", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return setBalancer(ctx, rc, LBNormal) }},
	}
}

func forwardSteps(r *store.Run) []stepDef {
	switch r.Procedure {
	case ProcUpgrade:
		return upgradeSteps()
	case ProcMaintain:
		return maintainSteps(r)
	case ProcStart:
		return firstStartSteps()
	}
	return nil
}

func rollbackSteps(r *store.Run) []stepDef {
	switch r.Procedure {
	case ProcUpgrade:
		return upgradeRollbackSteps()
	case ProcMaintain:
		return maintainRollbackSteps()
	}
	return nil
}
