package procedures

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// Every NocoBase start on an installed app runs its upgrade (the
// migrations), with no lock between nodes; two nodes upgrading at once
// can break one on the migrations table's unique key. So once the first
// node has started, the others never upgrade together: they start with
// the upgrade skipped, or one at a time (docs/nocobase.md, "Migrations").

// How the nodes after the first start (Cluster.Migrations).
const (
	// MigrationsAuto (also ""): with SKIP_SAME_VERSION_UPGRADE when the
	// nodes have their own environments and the first node reports a
	// NocoBase that knows the switch; one at a time otherwise.
	MigrationsAuto = "auto"
	// MigrationsSkipSameVersion sets the switch without asking the
	// version (a build whose version does not compare); still one at a
	// time where the nodes share one environment.
	MigrationsSkipSameVersion = "skip-same-version"
	// MigrationsOneAtATime starts them one at a time, each waited healthy.
	MigrationsOneAtATime = "one-at-a-time"
)

const (
	// skipUpgradeVar makes a node skip NocoBase's upgrade when the
	// database is at the node's own version (application.ts, upgrade()).
	skipUpgradeVar = "SKIP_SAME_VERSION_UPGRADE"
	// skipUpgradeSince is the first NocoBase release that reads it.
	skipUpgradeSince = "2.0.0-alpha.21"
)

// hasSkipSwitch reports whether NocoBase version v reads
// SKIP_SAME_VERSION_UPGRADE; unknown versions do not.
func hasSkipSwitch(v string) bool {
	if _, ok := parseVersion(v); !ok {
		return false
	}
	return !newerVersion(skipUpgradeSince, v)
}

// restOrder is how the nodes after the first start.
type restOrder struct {
	// skip: they start with the upgrade skipped, StartParallelism at a
	// time; otherwise one at a time.
	skip bool
	// settle: one of them first starts alone, without the switch: after
	// an install the migrations install does not record are still to
	// run, and it runs them while nothing else does.
	settle bool
	why    string
}

// chooseRestOrder decides how the nodes after first start. first runs and
// is healthy; it tells the version.
func chooseRestOrder(ctx context.Context, env *stepEnv, first ports.Node) restOrder {
	switch {
	case env.c.Migrations == MigrationsOneAtATime:
		return restOrder{why: "one at a time, as configured (nodes.migrations)"}
	case env.c.NodeEnv == nil:
		return restOrder{why: "one at a time: the nodes share one environment (a Swarm service), so none can start with the upgrade skipped"}
	}
	// The switch skips the upgrade only on a node at the database's
	// version: nodes left on other images (an upgrade aborted after
	// set-image on some, a node edited by hand) would upgrade together.
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return restOrder{why: fmt.Sprintf("one at a time: the nodes' images are unknown (%v)", err)}
	}
	if mixed := imageGroups(nodes); len(mixed) > 1 {
		return restOrder{why: fmt.Sprintf("one at a time: the nodes run different images (%s), so each not at the database's version runs NocoBase's upgrade even with %s", strings.Join(mixed, "; "), skipUpgradeVar)}
	}
	o := restOrder{skip: true, settle: env.rn.run.Procedure == ProcStart}
	if env.c.Migrations == MigrationsSkipSameVersion {
		o.why = "with " + skipUpgradeVar + "=true, as configured (nodes.migrations)"
	} else {
		vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v, err := env.c.App.Version(vctx, first)
		cancel()
		switch {
		case err != nil:
			return restOrder{why: fmt.Sprintf("one at a time: the version of %s is unknown (%v)", first.Name, err)}
		case !hasSkipSwitch(v):
			return restOrder{why: fmt.Sprintf("one at a time: NocoBase %s has no %s (%s and later)", v, skipUpgradeVar, skipUpgradeSince)}
		}
		o.why = fmt.Sprintf("with %s=true: %s runs NocoBase %s, which skips the upgrade when the database is at its version", skipUpgradeVar, first.Name, v)
	}
	if o.settle {
		o.why += "; after a first start one node runs alone first, without it, for the migrations an install leaves"
	}
	return o
}

// imageGroups says which nodes run which image ("app-1, app-2 on
// nocobase/nocobase:2.2.15"), one group per image: by digest where known,
// else by reference.
func imageGroups(nodes []ports.Node) []string {
	var order []string
	groups := map[string][]string{}
	shown := map[string]string{}
	for _, n := range nodes {
		id := n.Digest
		if id == "" {
			id = n.Image
		}
		if _, seen := groups[id]; !seen {
			order = append(order, id)
			shown[id] = n.Image
		}
		groups[id] = append(groups[id], n.Name)
	}
	refs := map[string]int{}
	for _, id := range order {
		refs[shown[id]]++
	}
	out := make([]string, len(order))
	for i, id := range order {
		img := shown[id]
		if refs[img] > 1 && id != img {
			img += " (" + shortDigest(id) + ")" // one tag, two images: a tag that moved
		}
		out[i] = strings.Join(groups[id], ", ") + " on " + img
	}
	return out
}

// setSkipUpgrade sets or clears SKIP_SAME_VERSION_UPGRADE on a stopped
// node before it starts; nothing where the nodes share one environment.
func setSkipUpgrade(ctx context.Context, env *stepEnv, name string, on bool) error {
	if env.c.NodeEnv == nil {
		return nil
	}
	value := ""
	if on {
		value = "true"
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := env.c.NodeEnv.SetEnv(sctx, name, skipUpgradeVar, value); err != nil {
		return fmt.Errorf("%s: set %s=%s: %w", name, skipUpgradeVar, value, err)
	}
	return nil
}

// migrationsPlan is the plan's line on how the nodes after the first
// start, as far as it is known before the run: the version is read from
// the image tags (the target's in an upgrade), not asked of a node.
func migrationsPlan(c *Cluster, nodes []ports.Node, req Request) string {
	const first = "the first node starts alone; the others "
	switch {
	case c.Migrations == MigrationsOneAtATime:
		return first + "one at a time, each waited healthy (configured)"
	case c.NodeEnv == nil:
		return first + "one at a time, each waited healthy (the nodes share one environment)"
	}
	// An upgrade's set-image gives every node the target image first.
	if g := imageGroups(nodes); len(g) > 1 && req.Procedure != ProcUpgrade {
		return first + "one at a time, each waited healthy (the nodes run different images: " + strings.Join(g, "; ") + ")"
	}
	if c.Migrations == MigrationsSkipSameVersion {
		return first + "with " + skipUpgradeVar + "=true (configured)"
	}
	v := versionPart(imageTag(nodes[0].Image))
	if req.Procedure == ProcUpgrade {
		v = versionPart(req.Version)
		if req.Image != "" {
			v = versionPart(imageTag(req.Image))
		}
	}
	switch {
	case v == "":
		return fmt.Sprintf("%swith %s=true if it reports NocoBase %s or later, else one at a time", first, skipUpgradeVar, skipUpgradeSince)
	case hasSkipSwitch(v):
		return fmt.Sprintf("%swith %s=true (NocoBase %s reads it; confirmed with the first node's version)", first, skipUpgradeVar, v)
	}
	return fmt.Sprintf("%sone at a time, each waited healthy (NocoBase %s has no %s)", first, v, skipUpgradeVar)
}
