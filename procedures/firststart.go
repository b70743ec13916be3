package procedures

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// ProcStart is the first start of a cluster: one node installs (or
// upgrades) and enables the plugins; only then may the others start.
const ProcStart = "start"

func firstStartProcedure() procedure {
	return procedure{
		name:  ProcStart,
		args:  "[cluster]",
		help:  "first start: one node until healthy, then the others, then traffic",
		parse: clusterOnly,
		validate: func(r Request) error {
			if r.Version != "" || len(r.Actions) > 0 {
				return fmt.Errorf("start takes no arguments besides the cluster")
			}
			return nil
		},
		title:   func(r store.Run) string { return fmt.Sprintf("first start of %s", r.Cluster) },
		forward: func(*store.Run) []stepDef { return firstStartSteps() },
	}
}

func firstStartSteps() []stepDef {
	return []stepDef{
		{name: "preflight", title: "Preflight: find the nodes", idempotent: true, do: func(ctx context.Context, env *stepEnv) (string, error) {
			nodes, err := listNodes(ctx, env)
			if err != nil {
				return "", err
			}
			recordNodes(env, nodes)
			if _, err := preflightEnv(ctx, env, nodes); err != nil {
				return "", err
			}
			env.record(func(w factWriter) { w.setFirstNode(nodes[0]) })
			redis, err := preflightRedis(ctx, env)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d nodes; %s starts first; %s", len(nodes), nodes[0].Name, redis), nil
		}},
		// A node that installs or migrates answers 503 until healthy.
		{name: "lb-maintenance", title: "Load balancer to the maintenance page until a node is healthy", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				return setBalancer(ctx, env, ports.LBMaintenance)
			}},
		// A cache left from an earlier install would serve another database's data.
		{name: "redis-reset", title: "Redis: empty the cache, drop the locks and signals (if every node is stopped)", idempotent: true,
			do: firstStartRedisReset},
		{name: "start-first", title: "Start one node, wait until healthy (plugins installed and enabled)", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				s, err := startAndWait(ctx, env, env.facts().FirstNode(), expectation{})
				return s.String(), err
			}},
		{name: "start-rest", title: "Start the other nodes (never two upgrading at once), each waited healthy", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return startRest(ctx, env, expectation{}) }},
		{name: "lb-normal", title: "Load balancer on: traffic to the app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return setBalancer(ctx, env, ports.LBNormal) }},
	}
}
