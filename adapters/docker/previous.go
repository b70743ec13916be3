package docker

import (
	"context"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

// Previous returns the image and digest a node had before its last
// SetImage (from the labels SetImage wrote), for a rollback. ref is the
// reference to give SetImage to get exactly that image back: repo@digest
// when the digest is a registry digest, else the local image id.
func (c *Containers) Previous(ctx context.Context, name string) (image, digest, ref string, err error) {
	ci, err := c.find(ctx, name, "previous image")
	if err != nil {
		return "", "", "", err
	}
	return c.previousRef(ctx, name, ci.Config.Labels)
}

// Previous returns the image the service had before its last SetImage;
// every slot shares it.
func (s *Swarm) Previous(ctx context.Context, name string) (image, digest, ref string, err error) {
	svc, err := s.service(ctx, "previous image")
	if err != nil {
		return "", "", "", err
	}
	return s.previousRef(ctx, name, svc.Spec.Labels)
}

func (c *base) previousRef(ctx context.Context, name string, labels map[string]string) (image, digest, ref string, err error) {
	image, digest = labels[LabelPreviousImage], labels[LabelPreviousDigest]
	if image == "" {
		return "", "", "", &Error{Node: name, Action: "previous image", Reason: "no image change recorded", Err: cerrdefs.ErrNotFound}
	}
	ref = image
	if digest != "" {
		ref = digest // a local image id works as an image reference
		if repo := repoOf(image); repo != "" && !c.localOnly(ctx, digest) {
			ref = repo + "@" + digest
		}
	}
	return image, digest, ref, nil
}

// localOnly reports whether digest is the local id of an image rather
// than a registry digest.
func (c *base) localOnly(ctx context.Context, digest string) bool {
	cctx, cancel := c.call(ctx)
	defer cancel()
	img, err := c.cli.ImageInspect(cctx, digest)
	return err == nil && img.ID == digest
}

// repoOf is the repository of an image reference, without tag or digest.
func repoOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}
