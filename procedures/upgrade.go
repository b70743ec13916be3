package procedures

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nocobot/nocobot/ports"
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
		options:  "[--same-version] [--image <reference> instead of <version>] [--start-during-verify|--no-start-during-verify]",
		help:     "upgrade the cluster to a NocoBase version, tag or image (503 page, backup, one node first, your check, the rest)",
		downtime: "lb-maintenance",
		parse:    parseUpgrade,
		validate: validateUpgrade,
		describe: func(r Request) string { return fmt.Sprintf("upgrade %s to %s", r.Cluster, r.target()) },
		title: func(r store.Run) string {
			to := UpgradeTarget(r)
			if from := FactsOf(r).FromVersion(); from != "" {
				return fmt.Sprintf("upgrade of %s from %s to %s", r.Cluster, from, to)
			}
			return fmt.Sprintf("upgrade of %s to %s", r.Cluster, to)
		},
		forward:  func(r *store.Run) []stepDef { return upgradeSteps(startsDuringVerify(r)) },
		rollback: func(*store.Run) []stepDef { return upgradeRollbackSteps() },
		plan: func(ctx context.Context, b *strings.Builder, c *Cluster, nodes []ports.Node, req Request) {
			image := targetImage(c, nodes, req.Version, req.Image)
			v := versionPart(imageTag(image))
			if v == "" {
				// The image's metadata may say, if the engine has it already.
				if info, err := imageInfo(ctx, c, image); err == nil && info.Version != "" {
					v = info.Version + " by its metadata"
				} else {
					v = "unknown until it starts (its digest is fixed at preflight)"
				}
			}
			fmt.Fprintf(b, "New image: %s (NocoBase %s)\n", image, v)
			fmt.Fprintf(b, "Start during verify: %s\n", duringVerifyPlan(c, req))
		},
	}
}

// UpgradeTarget is what an upgrade run moves to, as it was asked: a
// version, a tag or an image reference.
func UpgradeTarget(r store.Run) string {
	if v := r.Params["version"]; v != "" {
		return v
	}
	return r.Params["image"]
}

func parseUpgrade(req *Request, words []string) error {
	var pos []string
	for i := 0; i < len(words); i++ {
		switch a := words[i]; {
		case a == "--same-version":
			req.SameVersion = true
		case a == "--start-during-verify" || a == "--no-start-during-verify":
			on := a == "--start-during-verify"
			req.StartDuringVerify = &on
		case a == "--image":
			if i+1 >= len(words) {
				return errors.New("--image needs an image reference, e.g. --image registry.example.com/team/nocobase:2026-11-30")
			}
			req.Image = words[i+1]
			i++
		case strings.HasPrefix(a, "-"):
			return fmt.Errorf("unknown option %s", Typed(a))
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) > 0 && (req.Image == "" || versionRE.MatchString(pos[0]) || floatingRE.MatchString(pos[0])) {
		req.Version, pos = pos[0], pos[1:]
	}
	switch len(pos) {
	case 0:
	case 1:
		req.Cluster = pos[0]
	default:
		return fmt.Errorf("too many arguments: %s", Typed(strings.Join(pos[1:], " ")))
	}
	if req.Version == "" && req.Image == "" {
		return errors.New("which version? e.g. upgrade 1.7.14, upgrade latest or upgrade --image <reference>")
	}
	return nil
}

// version is what NocoBase publishes: 1.7.14, 2.0.0-beta.12, and the
// tags built on it (1.7.14-full).
var versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-.][0-9A-Za-z][0-9A-Za-z.-]*)?$`)

// floatingRE are the tags NocoBase moves from release to release.
var floatingRE = regexp.MustCompile(`^(latest|beta|alpha|next|rc)(-full)?$`)

// imageRefRE is a Docker image reference: [host[:port]/]path[:tag][@digest].
var imageRefRE = regexp.MustCompile(`^([A-Za-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

func validateUpgrade(r Request) error {
	switch {
	case r.Image != "" && r.Version != "":
		return errors.New("give a version or --image, not both")
	case r.Image != "":
		if len(r.Image) > 255 || !imageRefRE.MatchString(r.Image) {
			return fmt.Errorf("%s is not an image reference (expected e.g. registry.example.com/team/nocobase:2026-11-30)", TypedQ(r.Image))
		}
	case r.Version == "":
		return errors.New("a version is needed, e.g. 1.7.14")
	case len(r.Version) > 128 || !(versionRE.MatchString(r.Version) || floatingRE.MatchString(r.Version)):
		return fmt.Errorf("%s is not a NocoBase version or tag (expected e.g. 1.7.14, 1.7.14-full, 2.0.0-beta.12 or latest; other images with --image)", TypedQ(r.Version))
	}
	if len(r.Actions) > 0 {
		return errors.New("upgrade takes no maintenance actions")
	}
	return nil
}

func upgradeSteps(early bool) []stepDef {
	return []stepDef{
		{name: "preflight", title: "Preflight: nodes, versions, image pulled, backup possible", idempotent: true, do: upgradePreflight},
		{name: "lb-maintenance", title: "Load balancer to the 503 maintenance page", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				return setBalancer(ctx, env, ports.LBMaintenance)
			}},
		{name: "stop-nodes", title: "Stop all app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return stopNodes(ctx, env, "") }},
		{name: "backup", title: "Back up database and storage, verify the backup", idempotent: true, do: backupStep},
		{name: "set-image", title: "Set the new image on every node", do: upgradeSetImage},
		redisResetStepDef("redis-reset", "Redis: empty the cache, drop the locks and signals (every node stopped)", nil),
		{name: "start-first", title: "Start one node, wait until healthy on the new version", idempotent: true,
			do: upgradeStartFirst},
		verifyStepDef(early),
		startRestStepDef(early),
		{name: "lb-normal", title: "Load balancer back to the app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return setBalancer(ctx, env, ports.LBNormal) }},
		exportStepDef(),
	}
}

func upgradeRollbackSteps() []stepDef {
	return []stepDef{
		// Traffic may be back on the nodes (the roll-back follows a failed
		// switch back, or a failure after it): the page first.
		rollbackToMaintenance(),
		{name: "rb-stop-nodes", title: "Roll back: stop all app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return stopNodes(ctx, env, "") }},
		// Only a node started on the new image migrates the database.
		{name: "rb-restore", title: "Roll back: restore the database and storage from the backup", do: restoreStep,
			skip: func(r *store.Run) bool { return !stepBegan(r, "start-first") }},
		{name: "rb-set-image", title: "Roll back: set the previous image on every node", do: rollbackSetImage,
			skip: func(r *store.Run) bool { return !stepBegan(r, "set-image") }},
		// The restore put the queue back; the cache may hold what the new
		// version read or wrote.
		redisResetStepDef("rb-redis-reset", "Roll back: Redis: empty the cache, drop the locks and signals",
			func(r *store.Run) bool { return !stepBegan(r, "set-image") && !stepBegan(r, "start-first") }),
		{name: "rb-start-first", title: "Roll back: start one node, healthy on the previous version", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				f := env.facts()
				s, err := startAndWait(ctx, env, f.FirstNode(), rollbackTarget(f))
				return s.String(), err
			}},
		{name: "rb-start-rest", title: "Roll back: start the other nodes (never two upgrading at once), each waited healthy", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				return startRest(ctx, env, rollbackTarget(env.facts()))
			}},
		{name: "rb-lb-normal", title: "Roll back: load balancer back to the app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return setBalancer(ctx, env, ports.LBNormal) }},
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

// targetImage is the image an upgrade sets on every node: the image
// given, or the cluster's repository with the version's tag and the
// configured suffix (never twice: 1.7.14-full with -full stays so).
func targetImage(c *Cluster, nodes []ports.Node, version, image string) string {
	if image != "" {
		return image
	}
	repo := c.ImageRepo
	if repo == "" {
		repo = imageRepo(nodes[0].Image)
	}
	tag := version
	if c.TagSuffix != "" && !strings.HasSuffix(tag, c.TagSuffix) {
		tag += c.TagSuffix
	}
	return repo + ":" + tag
}

// errNothingToDo fails a preflight that found the work already done: a
// retry cannot change that, so the run offers no retry.
type errNothingToDo struct{ msg string }

func (e *errNothingToDo) Error() string { return e.msg }

func upgradePreflight(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	recordNodes(env, nodes)
	if nodes, err = runNodes(ctx, env); err != nil {
		return "", err
	}
	if _, err := preflightEnv(ctx, env, nodes); err != nil {
		return "", err
	}
	image := targetImage(env.c, nodes, env.param("version"), env.param("image"))
	env.record(func(w factWriter) {
		// Where every node comes from, for the roll-back.
		for _, n := range nodes {
			w.keepPrevImage(n.Name, n.Image)
			w.keepPrevDigest(n.Name, n.Digest)
		}
		w.setFirstNode(nodes[0])
		w.setTargetImage(image)
	})
	from := env.facts().FromVersion()
	if from == "" {
		from = currentVersion(ctx, env, nodes)
		env.record(func(w factWriter) { w.setFromVersion(from) })
	}
	// A saved record now means a crash from here on still knows the way back.
	if err := env.save(ctx); err != nil {
		return "", err
	}
	env.progress(fmt.Sprintf("pulling %s", image))
	if err := env.c.Nodes.Pull(ctx, image, env.progress); err != nil {
		return "", fmt.Errorf("pull %s: %w", image, err)
	}
	info, err := imageInfo(ctx, env.c, image)
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", image, err)
	}
	target := versionPart(imageTag(image))
	if target == "" {
		target = info.Version
	}
	env.record(func(w factWriter) { w.setTarget(info.Digest, target) })
	if info.Digest != "" && !slices.ContainsFunc(nodes, func(n ports.Node) bool { return n.Digest != info.Digest }) {
		return "", &errNothingToDo{fmt.Sprintf("every node of %s already runs %s (%s): nothing to upgrade", env.clusterName(), image, shortDigest(info.Digest))}
	}
	if target != "" && target == from && env.param("same_version") == "" {
		return "", &errNothingToDo{fmt.Sprintf("%s already runs %s; %s holds the same version: to move to it anyway, ask again with --same-version", env.clusterName(), from, image)}
	}
	backup, err := preflightBackup(ctx, env, true)
	if err != nil {
		return "", err
	}
	redis, err := preflightRedis(ctx, env)
	if err != nil {
		return "", err
	}
	if target == "" {
		target = "a version known once it starts"
	}
	return fmt.Sprintf("%d nodes; %s → %s; %s pulled (%s); %s; %s", len(nodes), from, target, image, shortDigest(info.Digest), backup, redis), nil
}

// upgradeTarget is what a node started on the target image must run.
func upgradeTarget(f Facts, nodes []string) expectation {
	exp := expectation{version: f.TargetVersion(), digests: map[string]string{}}
	if exp.version == "" {
		exp.version = f.ToVersion()
	}
	for _, n := range nodes {
		exp.digests[n] = f.TargetDigest()
	}
	return exp
}

// rollbackTarget is what a node must run after the roll-back.
func rollbackTarget(f Facts) expectation {
	exp := expectation{version: f.FromVersion(), digests: map[string]string{}}
	for _, n := range f.Nodes() {
		exp.digests[n] = f.PrevDigest(n)
	}
	return exp
}

func upgradeStartFirst(ctx context.Context, env *stepEnv) (string, error) {
	f := env.facts()
	s, err := startAndWait(ctx, env, f.FirstNode(), upgradeTarget(f, []string{f.FirstNode()}))
	if err != nil {
		return "", err
	}
	env.record(func(w factWriter) { w.setToVersion(s.version) })
	return s.String(), nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
