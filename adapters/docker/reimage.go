package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// oldSuffix is appended to a node's name while SetImage re-creates it.
const oldSuffix = "-nocobot-old"

// SetImage re-creates a stopped node with a new image and the same
// configuration: environment, mounts (anonymous volumes included, so
// their data follows), networks with aliases, labels (compose labels too,
// so docker compose ps still lists it), restart policy, health check,
// command and entrypoint — as the user gave them: values the old image
// supplied by default are left for the new image to supply. The new
// container records the previous image and digest in labels (see
// Previous). The node stays stopped, its restart policy held at "no" (see
// restartpolicy.go). Setting the image a node already has does nothing.
// image may be a tag, a digest reference (repo@sha256:…) or an image id.
//
// The change survives a kill of nocobot at any point. It goes:
//
//  1. hold the restart policy, rename the node to <name>-nocobot-old
//     (the leftover);
//  2. create <name> from the leftover's configuration, connect its
//     networks;
//  3. remove the leftover.
//
// Until step 3 the leftover is the node's true configuration. Whatever a
// kill left behind, SetImage on the node finishes the change: with only
// the leftover it starts again at step 2; with both, the new container may
// be half made, so it is removed and made again from the leftover. List
// reports a node that is only a leftover (stopped, on its old image);
// Cleanup settles every leftover of the cluster.
func (c *Containers) SetImage(ctx context.Context, name, image string) error {
	const action = "set image"
	cur, old, haveCur, haveOld, err := c.lookup(ctx, name, action)
	if err != nil {
		return err
	}
	if haveCur && running(cur) || haveOld && running(old) {
		return &Error{Node: name, Action: action, Reason: "node is running: stop it first", Err: cerrdefs.ErrConflict}
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	newImg, err := c.cli.ImageInspect(cctx, image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return &Error{Node: name, Action: action, Reason: fmt.Sprintf("image %s is not on the engine: pull it first", image), Err: err}
		}
		return c.wrap(name, action+" "+image, err)
	}

	if !haveOld {
		if cur.Config.Image == image && cur.Image == newImg.ID {
			c.log.Info().Str("node", name).Str("image", image).Msg("node already has this image")
			return c.holdRestart(ctx, name, &cur)
		}
		if err := c.holdRestart(ctx, name, &cur); err != nil {
			return err
		}
		if err := c.rename(ctx, cur.ID, name+oldSuffix, action+": rename the old container"); err != nil {
			return err
		}
		old, haveCur = cur, false
	} else {
		c.log.Warn().Str("node", name).Msg("finishing an interrupted image change")
		if haveCur {
			// Made by the interrupted change, perhaps only half: make it again.
			if _, err := c.cli.ContainerRemove(cctx, cur.ID, client.ContainerRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				return c.wrap(name, action+": remove the unfinished container", err)
			}
		}
		if err := c.holdRestart(ctx, name, &old); err != nil {
			return err
		}
		if old.Config.Image == image && old.Image == newImg.ID {
			// Going back to what the node was: it is the leftover itself.
			if err := c.rename(ctx, old.ID, name, action+": put back "+name+oldSuffix); err != nil {
				return err
			}
			c.log.Info().Str("node", name).Str("image", image).Msg("node put back as it was")
			return nil
		}
	}
	return c.recreate(ctx, name, image, old, nil)
}

// envChange is one variable to set ("" value: to remove) on a node that
// is re-created with the image it has.
type envChange struct{ key, value string }

// recreate makes the node's new container from old (already renamed to
// the leftover's name) and then removes old. A failure puts old back.
// Without env it changes the image and records the previous one; with
// env it keeps the image and the records and changes that variable.
func (c *Containers) recreate(ctx context.Context, name, image string, old container.InspectResponse, env *envChange) error {
	action := "set image"
	if env != nil {
		action = "set environment"
	}
	cctx, cancel := c.call(ctx)
	defer cancel()
	var oldImgCfg *dockerspec.DockerOCIImageConfig
	if oi, err := c.cli.ImageInspect(cctx, old.Image); err == nil {
		oldImgCfg = oi.Config
	} else {
		// Without the old image we cannot tell its defaults from the
		// user's settings: keep everything, which is safe but copies them.
		c.log.Warn().Err(err).Str("node", name).Msg("old image not found; copying its defaults into the new container")
	}
	cfg, hostCfg, primary, extra := recreateSpec(old, oldImgCfg, image)
	if env == nil {
		cfg.Labels[LabelPreviousImage] = old.Config.Image
		cfg.Labels[LabelPreviousDigest] = c.digest(cctx, old.Image, old.Config.Image)
	} else {
		cfg.Env = withEnv(cfg.Env, env.key, env.value)
	}

	backup := name + oldSuffix
	// Any failure (not a kill) puts the old container back under its name.
	undo := func(newID string, cause error) error {
		uctx, ucancel := c.call(context.WithoutCancel(ctx))
		defer ucancel()
		errs := []error{cause}
		if newID != "" {
			if _, err := c.cli.ContainerRemove(uctx, newID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, c.wrap(name, "remove the half-made container", err))
			}
		}
		if _, err := c.cli.ContainerRename(uctx, old.ID, client.ContainerRenameOptions{NewName: name}); err != nil {
			errs = append(errs, c.wrap(name, "put the old container back (it is "+backup+")", err))
		}
		return errors.Join(errs...)
	}

	created, err := c.cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Name:             name,
		Config:           cfg,
		HostConfig:       hostCfg,
		NetworkingConfig: primary,
	})
	if err != nil {
		return undo("", c.wrap(name, action+": create", err))
	}
	for _, w := range created.Warnings {
		c.log.Warn().Str("node", name).Msg("create: " + w)
	}
	// Engines before API 1.44 take one network at create time; connect
	// the others now, with their aliases.
	for _, netName := range slices.Sorted(maps.Keys(extra)) {
		if _, err := c.cli.NetworkConnect(cctx, netName, client.NetworkConnectOptions{Container: created.ID, EndpointConfig: extra[netName]}); err != nil {
			return undo(created.ID, c.wrap(name, action+": connect to network "+netName, err))
		}
	}
	if _, err := c.cli.ContainerRemove(cctx, old.ID, client.ContainerRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		// The new node is complete, but the leftover must not outlive the
		// change: say so (a retry of SetImage, or Cleanup, removes it).
		return c.wrap(name, action+": remove the old container "+backup, err)
	}
	if env != nil {
		// The variable's name only: a value may be a secret.
		c.log.Info().Str("node", name).Str("variable", env.key).Bool("set", env.value != "").Str("id", created.ID).Msg("node re-created with its environment changed")
		return nil
	}
	c.log.Info().Str("node", name).Str("image", image).Str("previous", old.Config.Image).Str("id", created.ID).Msg("node re-created")
	return nil
}
