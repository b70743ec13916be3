package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	"github.com/nocobot/nocobot/ports"
)

// ImageInfo is what the engine knows of an image reference; see
// ports.ImageInfo for its fields. Resolve fills Version from the
// Options.VersionLabel label, else the Options.VersionEnv variable.
type ImageInfo = ports.ImageInfo

// Resolve looks an image reference up on the engine: Pull it first (or
// have it loaded). It answers which image exactly the reference names now,
// and what version it declares. An image built for another platform than
// the engine's is an error: its nodes would not start ("exec format
// error"), and preflight must say so before the downtime.
func (c *base) Resolve(ctx context.Context, image string) (ImageInfo, error) {
	action := "resolve " + image
	cctx, cancel := c.call(ctx)
	defer cancel()
	img, err := c.cli.ImageInspect(cctx, image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return ImageInfo{}, &Error{Node: "engine", Action: action, Reason: fmt.Sprintf("image %s is not on the engine: pull it first", image), Err: err}
		}
		return ImageInfo{}, c.wrap("engine", action, err)
	}
	if err := c.samePlatform(ctx, image, img.Os, img.Architecture, img.Variant); err != nil {
		return ImageInfo{}, err
	}
	info := ImageInfo{Ref: image, ID: img.ID, Pinned: img.ID}
	if ref, err := reference.ParseNormalizedNamed(image); err == nil {
		info.Floating = floatingTag(ref)
		if d, ok := ref.(reference.Digested); ok {
			info.Digest = d.Digest().String()
		} else {
			info.Digest = repoDigest(img.RepoDigests, ref.Name())
		}
		if info.Digest != "" {
			info.Pinned = reference.FamiliarName(ref) + "@" + info.Digest
		}
	}
	if cfg := img.Config; cfg != nil {
		info.Version = cfg.Labels[c.opts.VersionLabel]
		if info.Version == "" && c.opts.VersionEnv != "" {
			for _, kv := range cfg.Env {
				if v, ok := strings.CutPrefix(kv, c.opts.VersionEnv+"="); ok {
					info.Version = v
				}
			}
		}
	}
	return info, nil
}

// samePlatform fails when an image's OS or CPU architecture is not the
// engine's. An image that declares neither (some hand-made imports) is
// taken as fitting.
func (c *base) samePlatform(ctx context.Context, image, imgOS, imgArch, imgVariant string) error {
	if imgOS == "" && imgArch == "" {
		return nil
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	v, err := c.cli.ServerVersion(cctx, client.ServerVersionOptions{})
	if err != nil {
		return c.wrap("engine", "resolve "+image, err)
	}
	if (imgOS == "" || v.Os == "" || imgOS == v.Os) && (imgArch == "" || v.Arch == "" || imgArch == v.Arch) {
		return nil
	}
	built := imgOS + "/" + imgArch
	if imgVariant != "" {
		built += "/" + imgVariant
	}
	return &Error{Node: "engine", Action: "resolve " + image,
		Reason: fmt.Sprintf("image %s is built for %s, but the engine runs %s/%s: its nodes would not start (exec format error); pull or load the %s/%s variant", image, built, v.Os, v.Arch, v.Os, v.Arch)}
}

// repoDigest picks the digest of repo (a normalized name such as
// "docker.io/nocobase/nocobase") among an image's RepoDigests.
func repoDigest(repoDigests []string, repo string) string {
	for _, rd := range repoDigests {
		ref, err := reference.ParseNormalizedNamed(rd)
		if err != nil {
			continue
		}
		if d, ok := ref.(reference.Digested); ok && ref.Name() == repo {
			return d.Digest().String()
		}
	}
	return ""
}
