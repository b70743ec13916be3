package procedures

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

// Steps shared by the procedures: they work on the cluster's nodes in
// name order, and the first node is always the one started alone.

// listNodes lists the nodes the adapter finds now.
func listNodes(ctx context.Context, env *stepEnv) ([]ports.Node, error) {
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nodes, err := env.c.Nodes.List(c)
	if err != nil {
		if strings.HasPrefix(err.Error(), "list nodes") {
			return nil, err // the adapter said what failed already
		}
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	if len(nodes) == 0 {
		return nil, errors.New("no app nodes found for the cluster (check the node selector in the configuration)")
	}
	return nodes, nil
}

// runNodes are the run's nodes: those recorded at preflight, which are
// the cluster for the whole run. A recorded node that cannot be found
// fails the step, naming it: it is never silently left behind.
func runNodes(ctx context.Context, env *stepEnv) ([]ports.Node, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return nil, err
	}
	recorded := env.facts().Nodes()
	if len(recorded) == 0 {
		return nodes, nil
	}
	out, missing := matchRecorded(nodes, recorded)
	if len(missing) > 0 {
		return nil, missingNodesError(missing)
	}
	return out, nil
}

// matchRecorded returns the listed nodes that were recorded, in the
// recorded order, and the recorded names not listed.
func matchRecorded(nodes []ports.Node, recorded []string) (found []ports.Node, missing []string) {
	for _, name := range recorded {
		i := slices.IndexFunc(nodes, func(n ports.Node) bool { return n.Name == name })
		if i < 0 {
			missing = append(missing, name)
			continue
		}
		found = append(found, nodes[i])
	}
	return found, missing
}

func missingNodesError(missing []string) error {
	return fmt.Errorf("node %s, recorded at preflight, cannot be found (check for a leftover container such as %s-nocobot-old and bring it back under its name)",
		strings.Join(missing, ", "), missing[0])
}

// recordNodes makes the listed nodes the run's nodes, unless a record
// exists: a resumed preflight keeps the first one.
func recordNodes(env *stepEnv, nodes []ports.Node) {
	env.record(func(w factWriter) { w.keepNodes(nodes) })
}

// firstNode is the node started alone: recorded at preflight so that a
// resumed run keeps using the same one.
func firstNode(ctx context.Context, env *stepEnv) (ports.Node, []ports.Node, error) {
	nodes, err := runNodes(ctx, env)
	if err != nil {
		return ports.Node{}, nil, err
	}
	want := env.facts().FirstNode()
	for _, n := range nodes {
		if n.Name == want || want == "" {
			return n, nodes, nil
		}
	}
	return ports.Node{}, nil, fmt.Errorf("node %s, started first so far, is gone", want)
}

func stopNodes(ctx context.Context, env *stepEnv, keep string) (string, error) {
	nodes, err := runNodes(ctx, env)
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
	after, err := runNodes(ctx, env)
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

// expectation is what a started node must run: a version ("" takes
// whatever it reports) and, per node, an image digest ("" takes any).
type expectation struct {
	version string
	digests map[string]string
}

// started is what one node start saw.
type started struct {
	node, version string
	took          time.Duration
}

func (s started) String() string {
	return fmt.Sprintf("%s healthy on %s after %s", s.node, s.version, format.Duration(s.took))
}

// startAndWait starts one node as the first, alone: without
// SKIP_SAME_VERSION_UPGRADE, so that it installs or runs NocoBase's
// upgrade (docs/nocobase.md), and waits until NocoBase on it is healthy
// and runs what exp expects.
func startAndWait(ctx context.Context, env *stepEnv, name string, exp expectation) (started, error) {
	return startNode(ctx, env, name, exp, false)
}

// startNode starts one node, if stopped with the upgrade skipped or not
// (skipUpgrade), and waits until NocoBase on it is healthy and runs what
// exp expects. A node that is running but stuck in APP_ERROR (a failed
// start, docs/nocobase.md) is restarted first. The switch is left alone
// where the configuration says one at a time.
func startNode(ctx context.Context, env *stepEnv, name string, exp expectation, skipUpgrade bool) (started, error) {
	began := time.Now()
	if err := restartIfBroken(ctx, env, name); err != nil {
		return started{}, err
	}
	if env.c.Migrations != MigrationsOneAtATime {
		node, err := findNode(ctx, env, name)
		if err != nil {
			return started{}, err
		}
		if !node.Running() {
			if err := setSkipUpgrade(ctx, env, name, skipUpgrade); err != nil {
				return started{}, err
			}
		}
	}
	env.progress(fmt.Sprintf("starting %s", name))
	if err := env.c.Nodes.Start(ctx, name); err != nil {
		return started{}, err
	}
	node, err := findNode(ctx, env, name)
	if err != nil {
		return started{}, err
	}
	hctx, cancel := context.WithTimeout(ctx, env.c.HealthTimeout)
	defer cancel()
	if err := env.c.App.WaitHealthy(hctx, node, env.progress); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return started{}, fmt.Errorf("%s was not healthy within %s: %w", name, env.c.HealthTimeout, err)
		}
		return started{}, fmt.Errorf("%s: %w", name, err)
	}
	got, err := env.c.App.Version(ctx, node)
	if err != nil {
		return started{}, fmt.Errorf("%s: read version: %w", name, err)
	}
	if exp.version != "" && got != exp.version {
		return started{}, fmt.Errorf("%s is healthy but reports version %s, expected %s", name, got, exp.version)
	}
	if want := exp.digests[name]; want != "" && node.Digest != "" && node.Digest != want {
		return started{}, fmt.Errorf("%s runs image %s, expected %s", name, node.Digest, want)
	}
	return started{node: name, version: got, took: time.Since(began)}, nil
}

func findNode(ctx context.Context, env *stepEnv, name string) (ports.Node, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return ports.Node{}, err
	}
	for _, n := range nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return ports.Node{}, fmt.Errorf("%s disappeared", name)
}

// restartIfBroken stops a running node whose app reports APP_ERROR, so
// that the start that follows is a fresh one.
func restartIfBroken(ctx context.Context, env *stepEnv, name string) error {
	node, err := findNode(ctx, env, name)
	if err != nil || !node.Running() {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	st, err := env.c.App.Probe(pctx, node.URL)
	cancel()
	if err != nil || !strings.HasPrefix(st.Code, "APP_ERROR") {
		return nil
	}
	env.progress(fmt.Sprintf("%s is stuck in %s: restarting it", name, st.Code))
	return env.c.Nodes.Stop(ctx, name)
}

// startRest starts the nodes other than the first, each waited healthy,
// so that no two of them run NocoBase's upgrade at once: together with
// the upgrade skipped, or one at a time (chooseRestOrder; the detail says
// which and why).
func startRest(ctx context.Context, env *stepEnv, exp expectation) (string, error) {
	first, nodes, err := firstNode(ctx, env)
	if err != nil {
		return "", err
	}
	var rest []string
	for _, n := range nodes {
		if n.Name != first.Name {
			rest = append(rest, n.Name)
		}
	}
	if len(rest) == 0 {
		return "no other nodes", nil
	}
	order := chooseRestOrder(ctx, env, first)
	env.progress("the other nodes start " + order.why)
	var done []string
	if order.settle {
		s, err := startNode(ctx, env, rest[0], exp, false)
		if err != nil {
			return "", err
		}
		done, rest = append(done, s.String()), rest[1:]
	}
	if !order.skip {
		// A node that did not come up may still be upgrading: the next
		// waits for a retry.
		for _, name := range rest {
			s, err := startNode(ctx, env, name, exp, false)
			if err != nil {
				return "", err
			}
			done = append(done, s.String())
		}
		return strings.Join(done, "; ") + " (started " + order.why + ")", nil
	}
	results := make([]started, len(rest))
	err = together(ctx, env.c.StartParallelism, rest, func(i int) error {
		var err error
		results[i], err = startNode(ctx, env, rest[i], exp, true)
		return err
	})
	if err != nil {
		return "", err
	}
	for _, r := range results {
		done = append(done, r.String())
	}
	return strings.Join(done, "; ") + " (started " + order.why + ")", nil
}

// together runs fn for each of names (fn gets the index), at most par at
// a time (0 or less: all at once), and returns every failure joined, in
// name order. A name not begun because ctx ended fails with ctx's error.
func together(ctx context.Context, par int, names []string, fn func(i int) error) error {
	if par <= 0 || par > len(names) {
		par = len(names)
	}
	errs := make([]error, len(names))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("%s: not begun: %w", name, ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func setBalancer(ctx context.Context, env *stepEnv, mode ports.LBMode) (string, error) {
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := env.c.Balancer.SetMode(c, mode); err != nil {
		return "", fmt.Errorf("load balancer to %s: %w", mode, err)
	}
	if mode == ports.LBMaintenance {
		env.record(func(w factWriter) { w.markDowntimeStart(env.now()) })
		return "traffic goes to the maintenance page (503)", nil
	}
	env.record(func(w factWriter) { w.markDowntimeEnd(env.now()) })
	return "traffic goes to the app nodes again", nil
}
