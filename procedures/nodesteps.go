package procedures

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Steps shared by the procedures: they work on the cluster's nodes in
// name order, and the first node is always the one started alone.

func listNodes(ctx context.Context, env *stepEnv) ([]Node, error) {
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nodes, err := env.c.Nodes.List(c)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	if len(nodes) == 0 {
		return nil, errors.New("no app nodes found for the cluster (check the node selector in the configuration)")
	}
	return nodes, nil
}

// firstNode is the node started alone: recorded at preflight so that a
// resumed run keeps using the same one.
func firstNode(ctx context.Context, env *stepEnv) (Node, []Node, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return Node{}, nil, err
	}
	want := env.facts().FirstNode()
	for _, n := range nodes {
		if n.Name == want || want == "" {
			return n, nodes, nil
		}
	}
	return Node{}, nil, fmt.Errorf("node %s, started first so far, is gone", want)
}

func stopNodes(ctx context.Context, env *stepEnv, keep string) (string, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	var stopped []string
	for _, n := range nodes {
		if n.Name == keep {
			continue
		}
		if n.Running() {
			env.progress(fmt.Sprintf("stopping %s", n.Name))
		}
		if err := env.c.Nodes.Stop(ctx, n.Name); err != nil {
			return "", err
		}
		stopped = append(stopped, n.Name)
	}
	// Trust but verify: a node that is still running would serve from the
	// old version or race the migration.
	after, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	for _, n := range after {
		if n.Name != keep && n.Running() {
			return "", fmt.Errorf("%s is still running after stop", n.Name)
		}
	}
	return fmt.Sprintf("stopped %s", strings.Join(stopped, ", ")), nil
}

// startAndWait starts one node and waits until NocoBase on it is healthy
// and, if want is set, reports that version.
func startAndWait(ctx context.Context, env *stepEnv, name, want string) (string, error) {
	began := time.Now()
	env.progress(fmt.Sprintf("starting %s", name))
	if err := env.c.Nodes.Start(ctx, name); err != nil {
		return "", err
	}
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	var node Node
	for _, n := range nodes {
		if n.Name == name {
			node = n
		}
	}
	if node.Name == "" {
		return "", fmt.Errorf("%s disappeared after start", name)
	}
	hctx, cancel := context.WithTimeout(ctx, env.c.HealthTimeout)
	defer cancel()
	if err := env.c.App.WaitHealthy(hctx, node, env.progress); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return "", fmt.Errorf("%s was not healthy within %s: %w", name, env.c.HealthTimeout, err)
		}
		return "", fmt.Errorf("%s: %w", name, err)
	}
	got, err := env.c.App.Version(ctx, node)
	if err != nil {
		return "", fmt.Errorf("%s: read version: %w", name, err)
	}
	if want != "" && got != want {
		return "", fmt.Errorf("%s is healthy but reports version %s, expected %s", name, got, want)
	}
	return fmt.Sprintf("%s healthy on %s after %s", name, got, time.Since(began).Round(100*time.Millisecond)), nil
}

// startRest starts the nodes other than the first one by one, each
// healthy before the next: a node that starts migrates the database, and
// only one may do that at a time.
func startRest(ctx context.Context, env *stepEnv, want string) (string, error) {
	first, nodes, err := firstNode(ctx, env)
	if err != nil {
		return "", err
	}
	var done []string
	for _, n := range nodes {
		if n.Name == first.Name {
			continue
		}
		d, err := startAndWait(ctx, env, n.Name, want)
		if err != nil {
			return "", err
		}
		done = append(done, d)
	}
	if len(done) == 0 {
		return "no other nodes", nil
	}
	return strings.Join(done, "; "), nil
}

func setBalancer(ctx context.Context, env *stepEnv, mode LBMode) (string, error) {
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := env.c.Balancer.SetMode(c, mode); err != nil {
		return "", fmt.Errorf("load balancer to %s: %w", mode, err)
	}
	if mode == LBMaintenance {
		env.record(func(w factWriter) { w.markDowntimeStart(env.now()) })
		return "traffic goes to the maintenance page (503)", nil
	}
	env.record(func(w factWriter) { w.markDowntimeEnd(env.now()) })
	return "traffic goes to the app nodes again", nil
}
