package procedures

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
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
func preflightKey(ctx context.Context, env *stepEnv, nodes []ports.Node) (string, error) {
	if !hasPluginActions(env.rn.run.Params) {
		return "", nil
	}
	first := env.facts().FirstNode()
	var node ports.Node
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

// perNodeVars may differ from node to node: what makes a node its own
// (its host name, port and process files), the services it runs when
// they are split (WORKER_MODE, docs/nocobase.md) and the switch nocobot
// sets on the nodes after the first (migrations.go).
var perNodeVars = []string{"HOSTNAME", "APP_PORT", "PM2_HOME", "SOCKET_PATH", "WORKER_MODE", skipUpgradeVar}

// maxWorkerIDNodes: the Redis worker-id allocator (REDIS_URL) hands out
// ids 0–31, one a node (docs/nocobase.md).
const maxWorkerIDNodes = 32

// preflightEnv refuses nodes whose environments differ on anything not
// per node: NocoBase's cluster mode wants every node configured alike,
// and a node with another APP_KEY or database would serve other data or
// refuse the others' tokens. Values are compared by hash and never shown.
// With the worker-id allocator, more than 32 nodes is refused.
func preflightEnv(ctx context.Context, env *stepEnv, nodes []ports.Node) (string, error) {
	if env.c.NodeEnv == nil {
		return "", nil // one environment for every node
	}
	own := map[string]bool{}
	for _, k := range append(slices.Clone(perNodeVars), env.c.PerNodeEnv...) {
		own[k] = true
	}
	hashes := make([]map[string]string, len(nodes))
	keys := map[string]bool{}
	for i, n := range nodes {
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		h, err := env.c.NodeEnv.EnvHashes(ectx, n.Name)
		cancel()
		if err != nil {
			return "", fmt.Errorf("read the environment of %s: %w", n.Name, err)
		}
		hashes[i] = h
		for k := range h {
			keys[k] = true
		}
	}
	var diffs []string
	workerIDs := false
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if k == "REDIS_URL" {
			workerIDs = true
		}
		if own[k] {
			continue
		}
		if d := envDifference(k, nodes, hashes); d != "" {
			diffs = append(diffs, d)
		}
	}
	if len(diffs) > 0 {
		return "", fmt.Errorf("the nodes' environments differ (values not shown): %s; NocoBase's cluster mode needs the same on every node: fix the nodes, or list a variable that is each node's own in nodes.per_node_env",
			strings.Join(diffs, "; "))
	}
	if workerIDs && len(nodes) > maxWorkerIDNodes {
		return "", fmt.Errorf("%d nodes, but the worker-id allocator (REDIS_URL) gives ids to at most %d: remove nodes down to %d", len(nodes), maxWorkerIDNodes, maxWorkerIDNodes)
	}
	return fmt.Sprintf("environments alike on %d nodes", len(nodes)), nil
}

// envDifference says how the nodes differ on variable k, "" if they do
// not: the groups of nodes that share a value, never the values.
func envDifference(k string, nodes []ports.Node, hashes []map[string]string) string {
	var order []string
	groups := map[string][]string{}
	unset := "\x00unset"
	for i, n := range nodes {
		h, ok := hashes[i][k]
		if !ok {
			h = unset
		}
		if _, seen := groups[h]; !seen {
			order = append(order, h)
		}
		groups[h] = append(groups[h], n.Name)
	}
	if len(order) < 2 {
		return ""
	}
	names := []string{"one value", "another", "a third", "a fourth"}
	parts := make([]string, len(order))
	value := 0
	for i, h := range order {
		nodes := strings.Join(groups[h], ", ")
		if h == unset {
			parts[i] = "not set on " + nodes
			continue
		}
		name := fmt.Sprintf("value %d", value+1)
		if value < len(names) {
			name = names[value]
		}
		value++
		parts[i] = name + " on " + nodes
	}
	return k + " (" + strings.Join(parts, "; ") + ")"
}
