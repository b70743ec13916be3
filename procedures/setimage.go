package procedures

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nocobot/nocobot/ports"
)

// The set-image steps change the image of every stopped node, inside
// the 503 period. The changes are independent of each other (each node is
// its own container, or one service whose update the adapter makes once),
// so they run together, StartParallelism at a time: the step takes about
// as long as the slowest node instead of the sum. A node that fails does
// not stop the others; the step reports every failure, and a retry skips
// the nodes already changed.

// imageChange is one node's change: the reference to set, worked out
// when the change begins (a roll-back pins it by digest).
type imageChange struct {
	node string
	ref  func(ctx context.Context) string
}

// refuseRunning fails, naming every running node, before any image
// changes: a running node would serve the old version or race the
// migration.
func refuseRunning(nodes []ports.Node) error {
	var running []string
	for _, n := range nodes {
		if n.Running() {
			running = append(running, n.Name)
		}
	}
	switch len(running) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s is running: refusing to change images while a node runs", running[0])
	}
	return fmt.Errorf("%s are running: refusing to change images while a node runs", strings.Join(running, ", "))
}

// changeImages makes the changes together and reports one progress line
// per node as it finishes ("app-2 → image (2/3)", counted in the order
// they finish). Every failure is returned, each naming its node; nodes
// that succeeded keep their new image.
func changeImages(ctx context.Context, env *stepEnv, changes []imageChange) error {
	var mu sync.Mutex // the count and its line go out together, in order
	done := 0
	names := make([]string, len(changes))
	for i, ch := range changes {
		names[i] = ch.node
	}
	if len(changes) > 1 {
		how := "together"
		switch p := env.c.StartParallelism; {
		case p == 1:
			how = "one by one"
		case p > 1 && p < len(changes):
			how = fmt.Sprintf("%d at a time", p)
		}
		env.progress(fmt.Sprintf("changing the image of %s %s", strings.Join(names, ", "), how))
	}
	return together(ctx, env.c.StartParallelism, names, func(i int) error {
		ch := changes[i]
		ref := ch.ref(ctx)
		if err := env.c.Nodes.SetImage(ctx, ch.node, ref); err != nil {
			return nodeError(ch.node, err)
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		env.progress(fmt.Sprintf("%s → %s (%d/%d)", ch.node, ref, done, len(changes)))
		return nil
	})
}

// nodeError makes sure err names node, once.
func nodeError(node string, err error) error {
	if strings.HasPrefix(err.Error(), node+":") {
		return err
	}
	return fmt.Errorf("%s: %w", node, err)
}

func upgradeSetImage(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := runNodes(ctx, env)
	if err != nil {
		return "", err
	}
	if err := refuseRunning(nodes); err != nil {
		return "", err
	}
	f := env.facts()
	target := f.TargetImage()
	var changes []imageChange
	var had []string
	for _, n := range nodes {
		if n.Image == target && (f.TargetDigest() == "" || n.Digest == f.TargetDigest()) {
			had = append(had, n.Name)
			continue
		}
		changes = append(changes, imageChange{node: n.Name, ref: func(context.Context) string { return target }})
	}
	if err := changeImages(ctx, env, changes); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%d nodes on %s", len(nodes), target)
	if len(had) > 0 && len(changes) > 0 {
		detail += fmt.Sprintf(" (%s had it already)", strings.Join(had, ", "))
	}
	return detail, nil
}

// rollbackSetImage puts every node back on the image it ran, pinned by
// the digest recorded at preflight: a tag may have moved since.
func rollbackSetImage(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := runNodes(ctx, env)
	if err != nil {
		return "", err
	}
	if err := refuseRunning(nodes); err != nil {
		return "", err
	}
	f := env.facts()
	var changes []imageChange
	for _, n := range nodes {
		prev, digest := f.PrevImage(n.Name), f.PrevDigest(n.Name)
		if prev == "" || (n.Image == prev && (digest == "" || n.Digest == digest)) {
			continue
		}
		changes = append(changes, imageChange{node: n.Name, ref: func(ctx context.Context) string {
			if digest == "" {
				return prev
			}
			return pinnedRef(ctx, env, prev, digest)
		}})
	}
	if err := changeImages(ctx, env, changes); err != nil {
		return "", err
	}
	return "every node on its previous image", nil
}

// pinnedRef names exactly the image with digest: its tag while the tag
// still names it, else repo@digest for a registry digest or the id
// itself for an image that is only local.
func pinnedRef(ctx context.Context, env *stepEnv, image, digest string) string {
	if info, err := imageInfo(ctx, env.c, image); err == nil && info.Digest == digest {
		return image
	}
	if info, err := imageInfo(ctx, env.c, digest); err == nil && info.ID == digest {
		return digest
	}
	return imageRepo(image) + "@" + digest
}
