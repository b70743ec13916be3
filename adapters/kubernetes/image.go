package kubernetes

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nocobot/nocobot/ports"
)

// SetImage changes the container's image, once for all nodes (a call for
// another node finds it done, also when the calls come at once), pinned
// by digest so that every pod runs exactly the image checked at
// preflight. It is one patch, which also records the image before it, so
// a kill cannot leave it half made. The workload must be at 0 replicas:
// no rolling update across versions.
func (n *Nodes) SetImage(ctx context.Context, name, image string) error {
	n.imageMu.Lock()
	defer n.imageMu.Unlock()
	return retryConflict(ctx, func() error { return n.setImage(ctx, name, image) })
}

func (n *Nodes) setImage(ctx context.Context, name, image string) error {
	w, err := n.workload(ctx)
	if err != nil {
		return fmt.Errorf("%s: set image: %w", name, err)
	}
	if _, err := n.position(w, name); err != nil {
		return err
	}
	cur := w.container.Image
	curImage, _ := splitDigest(cur)
	pinned := image
	if _, d := splitDigest(image); d == "" {
		info, err := n.Resolve(ctx, image)
		if err != nil {
			return fmt.Errorf("%s: set image: %w", name, err)
		}
		pinned = image + "@" + info.Digest
	}
	if cur == pinned || cur == image && strings.Contains(image, "@") {
		return nil // done already (SetImage is called once per node; the workload changes once)
	}
	if w.replicas != 0 {
		return fmt.Errorf("%s: set image: %s %s still has %d replicas: stop all nodes first (no rolling update across versions)", name, w.kind, w.name, w.replicas)
	}
	body := map[string]any{
		"metadata": map[string]any{
			"annotations":     map[string]any{AnnotationPreviousImage: cur},
			"resourceVersion": w.resourceVersion,
		},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []map[string]any{{"name": w.container.Name, "image": pinned}},
		}}},
	}
	if err := n.patch(ctx, w, types.StrategicMergePatchType, body); err != nil {
		return fmt.Errorf("%s: set image %s: %w", name, pinned, err)
	}
	n.log.Info().Str("workload", w.name).Str("image", pinned).Str("previous", cur).Str("previous_image", curImage).Msg("workload image changed")
	return nil
}

// Pull checks that the image exists in its registry: the pods' nodes pull
// it themselves when they start.
func (n *Nodes) Pull(ctx context.Context, image string, progress ports.Progress) error {
	info, err := n.Resolve(ctx, image)
	if err != nil {
		return err
	}
	if progress != nil {
		progress(fmt.Sprintf("%s is %s in its registry", image, info.Digest))
	}
	return nil
}

// Resolve asks the image's registry which manifest the reference names now.
func (n *Nodes) Resolve(ctx context.Context, image string) (ports.ImageInfo, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return ports.ImageInfo{}, fmt.Errorf("image %q: %w", image, err)
	}
	info := ports.ImageInfo{Ref: image}
	if d, ok := named.(reference.Digested); ok {
		info.Digest = d.Digest().String()
	} else {
		named = reference.TagNameOnly(named)
		tag := named.(reference.Tagged).Tag()
		info.Floating = !strings.ContainsAny(tag, "0123456789")
		cctx, cancel := n.call(ctx)
		defer cancel()
		info.Digest, err = manifestDigest(cctx, reference.Domain(named), reference.Path(named), tag, n.opts.RegistryUser, n.opts.RegistryPassword)
		if err != nil {
			return ports.ImageInfo{}, fmt.Errorf("image %s: %w", image, err)
		}
	}
	info.ID = info.Digest
	repo, _ := splitDigest(image)
	info.Pinned = repo + "@" + info.Digest
	return info, nil
}
