package procedures

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Checks that preflight runs before any downtime, for what would
// otherwise fail only inside it: the backup (destination, room, database,
// tools) and, for plugin actions, the API key.

// preflightBackup fails if the run's backup could not be taken, and says
// which kind it will be. nodesStopped: the run takes it with every node
// stopped.
func preflightBackup(ctx context.Context, env *stepEnv, nodesStopped bool) (string, error) {
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := env.c.Backups.Check(bctx); err != nil {
		return "", fmt.Errorf("a backup could not be taken: %w", err)
	}
	return "backup destination ready; backup: " + backupPlan(bctx, env.c, nodesStopped), nil
}

// hasPluginActions: the run calls NocoBase's API with the API key.
func hasPluginActions(params map[string]string) bool {
	for _, a := range actionsOf(params) {
		switch a.Kind {
		case "enable", "disable", "add":
			return true
		}
	}
	return false
}

// preflightKey asks a running node whether it accepts the API key when
// the run has plugin actions; "" when it has none.
func preflightKey(ctx context.Context, env *stepEnv, nodes []Node) (string, error) {
	if !hasPluginActions(env.rn.run.Params) {
		return "", nil
	}
	first := env.facts().FirstNode()
	var node Node
	for _, n := range nodes {
		if n.Running() && (node.Name == "" || n.Name == first) {
			node = n
		}
	}
	if node.Name == "" {
		return "API key not checked: no node runs to ask", nil
	}
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := env.c.App.CheckKey(kctx, node); err != nil {
		return "", fmt.Errorf("the plugin actions would fail: %w", err)
	}
	return "API key accepted by " + node.Name, nil
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}
