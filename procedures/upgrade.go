package procedures

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/store"
)

// The upgrade, as NocoBase's cluster operations guide says: no online
// upgrade, traffic off, a verified backup, one node migrates the
// database, a person checks it, then the rest.

func upgradeSteps() []stepDef {
	return []stepDef{
		{name: "preflight", title: "Preflight: nodes, versions, image pulled, backup possible", idempotent: true, do: upgradePreflight},
		{name: "lb-maintenance", title: "Load balancer to the 503 maintenance page", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return setBalancer(ctx, rc, LBMaintenance) }},
		{name: "stop-nodes", title: "Stop all app nodes", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return stopNodes(ctx, rc, "") }},
		{name: "backup", title: "Back up database and storage, verify the backup", idempotent: true, do: backupStep},
		{name: "set-image", title: "Set the new image on every node", do: upgradeSetImage},
		{name: "start-first", title: "Start one node, wait until healthy on the new version", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) {
				return startAndWait(ctx, rc, rc.fact("first_node"), rc.param("version"))
			}},
		{name: "verify", title: "Verify checkpoint", checkpoint: "verify", question: func(rc *runCtx) (string, string) {
			return fmt.Sprintf("%s runs %s on one node. Check it works, then continue, roll back (restores backup %s) or abort.",
				rc.x.run.Cluster, rc.param("version"), rc.fact("backup")), rc.fact("first_url")
		}},
		{name: "start-rest", title: "Start the other nodes one by one, each healthy", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return startRest(ctx, rc, rc.param("version")) }},
		{name: "lb-normal", title: "Load balancer back to the app nodes", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return setBalancer(ctx, rc, LBNormal) }},
	}
}

func upgradeRollbackSteps() []stepDef {
	return []stepDef{
		{name: "rb-stop-nodes", title: "Roll back: stop all app nodes", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return stopNodes(ctx, rc, "") }},
		// Only a node started on the new image migrates the database.
		{name: "rb-restore", title: "Roll back: restore the database and storage from the backup", do: restoreStep,
			skip: func(r *store.Run) bool { return !stepBegan(r, "start-first") }},
		{name: "rb-set-image", title: "Roll back: set the previous image on every node", do: rollbackSetImage,
			skip: func(r *store.Run) bool { return !stepBegan(r, "set-image") }},
		{name: "rb-start-first", title: "Roll back: start one node, healthy on the previous version", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) {
				return startAndWait(ctx, rc, rc.fact("first_node"), rc.fact("from_version"))
			}},
		{name: "rb-start-rest", title: "Roll back: start the other nodes one by one", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) {
				return startRest(ctx, rc, rc.fact("from_version"))
			}},
		{name: "rb-lb-normal", title: "Roll back: load balancer back to the app nodes", idempotent: true,
			do: func(ctx context.Context, rc *runCtx) (string, error) { return setBalancer(ctx, rc, LBNormal) }},
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

func imageRepo(image string) string {
	// Strip a digest, then a tag (a colon after the last slash).
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}

func upgradePreflight(ctx context.Context, rc *runCtx) (string, error) {
	nodes, err := listNodes(ctx, rc)
	if err != nil {
		return "", err
	}
	target := rc.param("version")
	repo := rc.c.ImageRepo
	if repo == "" {
		repo = imageRepo(nodes[0].Image)
	}
	targetImage := repo + ":" + target + rc.c.TagSuffix
	// Record where every node comes from, for the roll-back.
	for _, n := range nodes {
		if rc.fact("image:"+n.Name) == "" {
			rc.setFact("image:"+n.Name, n.Image)
		}
	}
	rc.setFact("first_node", nodes[0].Name)
	rc.setFact("first_url", nodes[0].URL)
	rc.setFact("target_image", targetImage)

	from := rc.fact("from_version")
	if from == "" {
		from = currentVersion(ctx, rc, nodes)
		rc.setFact("from_version", from)
	}
	if from == target {
		return "", fmt.Errorf("%s already runs %s: nothing to upgrade", rc.x.run.Cluster, target)
	}
	// A saved record now means a crash from here on still knows the way back.
	if err := rc.save(ctx); err != nil {
		return "", err
	}
	rc.progress(fmt.Sprintf("pulling %s", targetImage))
	if err := rc.c.Nodes.Pull(ctx, targetImage, rc.progress); err != nil {
		return "", fmt.Errorf("pull %s: %w", targetImage, err)
	}
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := rc.c.Backups.Check(bctx); err != nil {
		return "", fmt.Errorf("a backup could not be taken: %w", err)
	}
	return fmt.Sprintf("%d nodes; %s → %s; %s pulled; backup destination ready", len(nodes), from, target, targetImage), nil
}

// currentVersion asks a running node, else reads the image tag.
func currentVersion(ctx context.Context, rc *runCtx, nodes []Node) string {
	for _, n := range nodes {
		if !n.Running() {
			continue
		}
		c, cancel := context.WithTimeout(ctx, 15*time.Second)
		v, err := rc.c.App.Version(c, n)
		cancel()
		if err == nil && v != "" {
			return v
		}
	}
	return strings.TrimSuffix(imageTag(nodes[0].Image), rc.c.TagSuffix)
}

func backupStep(ctx context.Context, rc *runCtx) (string, error) {
	nodes, err := listNodes(ctx, rc)
	if err != nil {
		return "", err
	}
	version := rc.fact("from_version")
	if version == "" {
		version = currentVersion(ctx, rc, nodes)
	}
	img := rc.fact("image:" + nodes[0].Name)
	if img == "" {
		img = nodes[0].Image
	}
	info, err := rc.c.Backups.Create(ctx, BackupRequest{Cluster: rc.x.run.Cluster, Version: version, Image: img, RunID: rc.x.run.ID}, rc.progress)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	if !info.Verified {
		return "", fmt.Errorf("backup %s was not verified: not going on without a verified backup", info.ID)
	}
	rc.setFact("backup", info.ID)
	return fmt.Sprintf("backup %s verified (%s)", info.ID, format.Bytes(info.Size)), nil
}

func restoreStep(ctx context.Context, rc *runCtx) (string, error) {
	id := rc.fact("backup")
	if id == "" {
		return "", fmt.Errorf("no backup was taken in this run: nothing to restore")
	}
	if err := rc.c.Backups.Restore(ctx, id, rc.progress); err != nil {
		return "", fmt.Errorf("restore %s: %w", id, err)
	}
	return "restored backup " + id, nil
}

func upgradeSetImage(ctx context.Context, rc *runCtx) (string, error) {
	nodes, err := listNodes(ctx, rc)
	if err != nil {
		return "", err
	}
	target := rc.fact("target_image")
	for i, n := range nodes {
		if n.Running() {
			return "", fmt.Errorf("%s is running: refusing to change images while a node runs", n.Name)
		}
		if n.Image == target {
			continue
		}
		rc.progress(fmt.Sprintf("%s → %s (%d/%d)", n.Name, target, i+1, len(nodes)))
		if err := rc.c.Nodes.SetImage(ctx, n.Name, target); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d nodes on %s", len(nodes), target), nil
}

func rollbackSetImage(ctx context.Context, rc *runCtx) (string, error) {
	nodes, err := listNodes(ctx, rc)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		prev := rc.fact("image:" + n.Name)
		if prev == "" || n.Image == prev {
			continue
		}
		rc.progress(fmt.Sprintf("%s → %s", n.Name, prev))
		if err := rc.c.Nodes.SetImage(ctx, n.Name, prev); err != nil {
			return "", err
		}
	}
	return "every node on its previous image", nil
}
