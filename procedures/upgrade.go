package procedures

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nocobot/nocobot/store"
)

// ProcUpgrade moves a cluster to another NocoBase version, as NocoBase's
// cluster operations guide says (docs/nocobase.md): no online upgrade,
// traffic off, a verified backup, one node migrates the database, a
// person checks it, then the rest.
const ProcUpgrade = "upgrade"

func upgradeProcedure() procedure {
	return procedure{
		name:     ProcUpgrade,
		args:     "<version> [cluster]",
		help:     "upgrade the cluster to a NocoBase version (503 page, backup, one node first, your check, the rest)",
		parse:    parseUpgrade,
		validate: validateUpgrade,
		describe: func(r Request) string { return fmt.Sprintf("upgrade %s to %s", r.Cluster, r.Version) },
		title: func(r store.Run) string {
			if from := FactsOf(r).FromVersion(); from != "" {
				return fmt.Sprintf("upgrade of %s from %s to %s", r.Cluster, from, r.Params["version"])
			}
			return fmt.Sprintf("upgrade of %s to %s", r.Cluster, r.Params["version"])
		},
		forward:  func(*store.Run) []stepDef { return upgradeSteps() },
		rollback: func(*store.Run) []stepDef { return upgradeRollbackSteps() },
		plan: func(b *strings.Builder, c *Cluster, nodes []Node, req Request) {
			fmt.Fprintf(b, "New image: %s\n", targetImage(c, nodes, req.Version))
		},
	}
}

func parseUpgrade(req *Request, words []string) error {
	var pos []string
	for _, a := range words {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("unknown option %s", a)
		}
		pos = append(pos, a)
	}
	switch len(pos) {
	case 0:
		return errors.New("which version? e.g. upgrade 1.7.14")
	case 1:
		req.Version = pos[0]
	case 2:
		req.Version, req.Cluster = pos[0], pos[1]
	default:
		return fmt.Errorf("too many arguments: %s", strings.Join(pos[2:], " "))
	}
	return nil
}

// version is what NocoBase publishes: 1.7.14, 2.0.0-beta.12, 1.7.14-full
// (exact versions only: "latest" cannot be verified after the upgrade).
var versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-.][0-9A-Za-z][0-9A-Za-z.-]*)?$`)

func validateUpgrade(r Request) error {
	if r.Version == "" {
		return errors.New("a version is needed, e.g. 1.7.14")
	}
	if len(r.Version) > 128 || !versionRE.MatchString(r.Version) {
		return fmt.Errorf("%q is not an exact NocoBase version (expected something like 1.7.14 or 2.0.0-beta.12)", r.Version)
	}
	if len(r.Actions) > 0 {
		return errors.New("upgrade takes no maintenance actions")
	}
	return nil
}

func upgradeSteps() []stepDef {
	return []stepDef{
		{name: "preflight", title: "Preflight: nodes, versions, image pulled, backup possible", idempotent: true, do: upgradePreflight},
		{name: "lb-maintenance", title: "Load balancer to the 503 maintenance page", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return setBalancer(ctx, env, LBMaintenance) }},
		{name: "stop-nodes", title: "Stop all app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return stopNodes(ctx, env, "") }},
		{name: "backup", title: "Back up database and storage, verify the backup", idempotent: true, do: backupStep},
		{name: "set-image", title: "Set the new image on every node", do: upgradeSetImage},
		{name: "start-first", title: "Start one node, wait until healthy on the new version", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				return startAndWait(ctx, env, env.facts().FirstNode(), env.param("version"))
			}},
		{name: "verify", title: "Verify checkpoint", checkpoint: "verify", question: func(env *stepEnv) (string, string) {
			f := env.facts()
			return fmt.Sprintf("%s runs %s on one node. Check it works, then continue, roll back (restores backup %s) or abort.",
				env.clusterName(), env.param("version"), f.BackupID()), f.FirstURL()
		}},
		{name: "start-rest", title: "Start the other nodes one by one, each healthy", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				return startRest(ctx, env, env.param("version"))
			}},
		{name: "lb-normal", title: "Load balancer back to the app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return setBalancer(ctx, env, LBNormal) }},
	}
}

func upgradeRollbackSteps() []stepDef {
	return []stepDef{
		{name: "rb-stop-nodes", title: "Roll back: stop all app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return stopNodes(ctx, env, "") }},
		// Only a node started on the new image migrates the database.
		{name: "rb-restore", title: "Roll back: restore the database and storage from the backup", do: restoreStep,
			skip: func(r *store.Run) bool { return !stepBegan(r, "start-first") }},
		{name: "rb-set-image", title: "Roll back: set the previous image on every node", do: rollbackSetImage,
			skip: func(r *store.Run) bool { return !stepBegan(r, "set-image") }},
		{name: "rb-start-first", title: "Roll back: start one node, healthy on the previous version", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				f := env.facts()
				return startAndWait(ctx, env, f.FirstNode(), f.FromVersion())
			}},
		{name: "rb-start-rest", title: "Roll back: start the other nodes one by one", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				return startRest(ctx, env, env.facts().FromVersion())
			}},
		{name: "rb-lb-normal", title: "Roll back: load balancer back to the app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return setBalancer(ctx, env, LBNormal) }},
	}
}

// stepBegan reports whether a forward step was ever started.
func stepBegan(r *store.Run, name string) bool {
	for _, s := range r.Steps {
		if s.Name == name && !s.Rollback {
			return s.Attempt > 0 || (s.Status != store.StepPending && s.Status != store.StepSkipped)
		}
	}
	return false
}

// targetImage is the image an upgrade to version sets on every node.
func targetImage(c *Cluster, nodes []Node, version string) string {
	repo := c.ImageRepo
	if repo == "" {
		repo = imageRepo(nodes[0].Image)
	}
	return repo + ":" + version + c.TagSuffix
}

func upgradePreflight(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	target := env.param("version")
	image := targetImage(env.c, nodes, target)
	env.record(func(w factWriter) {
		// Where every node comes from, for the roll-back.
		for _, n := range nodes {
			w.keepPrevImage(n.Name, n.Image)
		}
		w.setFirstNode(nodes[0])
		w.setTargetImage(image)
	})
	from := env.facts().FromVersion()
	if from == "" {
		from = currentVersion(ctx, env, nodes)
		env.record(func(w factWriter) { w.setFromVersion(from) })
	}
	if from == target {
		return "", fmt.Errorf("%s already runs %s: nothing to upgrade", env.clusterName(), target)
	}
	// A saved record now means a crash from here on still knows the way back.
	if err := env.save(ctx); err != nil {
		return "", err
	}
	env.progress(fmt.Sprintf("pulling %s", image))
	if err := env.c.Nodes.Pull(ctx, image, env.progress); err != nil {
		return "", fmt.Errorf("pull %s: %w", image, err)
	}
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := env.c.Backups.Check(bctx); err != nil {
		return "", fmt.Errorf("a backup could not be taken: %w", err)
	}
	return fmt.Sprintf("%d nodes; %s → %s; %s pulled; backup destination ready", len(nodes), from, target, image), nil
}

func upgradeSetImage(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	target := env.facts().TargetImage()
	for i, n := range nodes {
		if n.Running() {
			return "", fmt.Errorf("%s is running: refusing to change images while a node runs", n.Name)
		}
		if n.Image == target {
			continue
		}
		env.progress(fmt.Sprintf("%s → %s (%d/%d)", n.Name, target, i+1, len(nodes)))
		if err := env.c.Nodes.SetImage(ctx, n.Name, target); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d nodes on %s", len(nodes), target), nil
}

func rollbackSetImage(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	f := env.facts()
	for _, n := range nodes {
		prev := f.PrevImage(n.Name)
		if prev == "" || n.Image == prev {
			continue
		}
		env.progress(fmt.Sprintf("%s → %s", n.Name, prev))
		if err := env.c.Nodes.SetImage(ctx, n.Name, prev); err != nil {
			return "", err
		}
	}
	return "every node on its previous image", nil
}
