package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// SetImage re-creates a stopped node with a new image and the same
// configuration: environment, mounts (anonymous volumes included, so
// their data follows), networks with aliases, labels (compose labels too,
// so docker compose ps still lists it), restart policy, health check,
// command and entrypoint — as the user gave them: values the old image
// supplied by default are left for the new image to supply. The old
// container is renamed to <name>-nocobot-old and removed only after the
// new one is created and connected, so a failure puts it back. The new
// container records the previous image and digest in labels (see
// Previous). The node stays stopped. Setting the image a node already
// runs does nothing.
func (c *Cluster) SetImage(ctx context.Context, name, image string) error {
	if c.swarm() {
		return c.swarmSetImage(ctx, name, image)
	}
	const action = "set image"
	if err := c.recoverOld(ctx, name); err != nil {
		return err
	}
	old, err := c.inspectNode(ctx, name, action)
	if err != nil {
		return err
	}
	if running(old) {
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
	if old.Config.Image == image && old.Image == newImg.ID {
		c.log.Info().Str("node", name).Str("image", image).Msg("node already has this image")
		return nil
	}
	var oldImgCfg *dockerspec.DockerOCIImageConfig
	if oi, err := c.cli.ImageInspect(cctx, old.Image); err == nil {
		oldImgCfg = oi.Config
	} else {
		// Without the old image we cannot tell its defaults from the
		// user's settings: keep everything, which is safe but copies them.
		c.log.Warn().Err(err).Str("node", name).Msg("old image not found; copying its defaults into the new container")
	}
	prevDigest := c.digest(cctx, old.Image, old.Config.Image)
	cfg, hostCfg, primary, extra := recreateSpec(old, oldImgCfg, image)
	cfg.Labels[LabelPreviousImage] = old.Config.Image
	cfg.Labels[LabelPreviousDigest] = prevDigest

	backup := name + oldSuffix
	if _, err := c.cli.ContainerRename(cctx, old.ID, client.ContainerRenameOptions{NewName: backup}); err != nil {
		return c.wrap(name, action+": rename the old container", err)
	}
	// From here on, any failure puts the old container back under its name.
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
	if _, err := c.cli.ContainerRemove(cctx, old.ID, client.ContainerRemoveOptions{}); err != nil {
		// The new node is complete; the old one is only clutter now.
		c.log.Warn().Err(err).Str("node", name).Str("container", backup).Msg("could not remove the previous container; remove it by hand")
	}
	c.log.Info().Str("node", name).Str("image", image).Str("previous", old.Config.Image).Str("id", created.ID).Msg("node re-created")
	return nil
}

// recoverOld finishes or undoes an image change that was interrupted:
// with both <name> and <name>-nocobot-old present, the new container was
// made and only the old one's removal is missing; with only the old one,
// the change stopped before the new container existed, so it gets its
// name back.
func (c *Cluster) recoverOld(ctx context.Context, name string) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	backup := name + oldSuffix
	old, err := c.cli.ContainerInspect(cctx, backup, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return c.wrap(name, "set image: inspect "+backup, err)
	}
	_, err = c.cli.ContainerInspect(cctx, name, client.ContainerInspectOptions{})
	switch {
	case err == nil:
		c.log.Info().Str("node", name).Msg("removing the previous container left by an interrupted image change")
		if _, err := c.cli.ContainerRemove(cctx, old.Container.ID, client.ContainerRemoveOptions{}); err != nil {
			return c.wrap(name, "set image: remove "+backup, err)
		}
	case cerrdefs.IsNotFound(err):
		c.log.Warn().Str("node", name).Msg("restoring the node's container from an interrupted image change")
		if _, err := c.cli.ContainerRename(cctx, old.Container.ID, client.ContainerRenameOptions{NewName: name}); err != nil {
			return c.wrap(name, "set image: restore "+backup, err)
		}
	default:
		return c.wrap(name, "set image", err)
	}
	return nil
}

// Previous returns the image and digest a node had before its last
// SetImage (from the labels SetImage wrote), for a rollback. ref is the
// reference to give SetImage to get exactly that image back: repo@digest
// when the digest is a registry digest, else the local image id.
func (c *Cluster) Previous(ctx context.Context, name string) (image, digest, ref string, err error) {
	var labels map[string]string
	if c.swarm() {
		svc, err := c.service(ctx, "previous image")
		if err != nil {
			return "", "", "", err
		}
		labels = svc.Spec.Labels
	} else {
		ci, err := c.inspectNode(ctx, name, "previous image")
		if err != nil {
			return "", "", "", err
		}
		labels = ci.Config.Labels
	}
	image, digest = labels[LabelPreviousImage], labels[LabelPreviousDigest]
	if image == "" {
		return "", "", "", &Error{Node: name, Action: "previous image", Reason: "no image change recorded", Err: cerrdefs.ErrNotFound}
	}
	ref = image
	if digest != "" {
		ref = digest // a local image id works as an image reference
		if repo := repoOf(image); repo != "" && !c.localOnly(ctx, image, digest) {
			ref = repo + "@" + digest
		}
	}
	return image, digest, ref, nil
}

// localOnly reports whether digest is the local id of image rather than
// a registry digest.
func (c *Cluster) localOnly(ctx context.Context, image, digest string) bool {
	cctx, cancel := c.call(ctx)
	defer cancel()
	img, err := c.cli.ImageInspect(cctx, digest)
	return err == nil && img.ID == digest
}

func repoOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

// recreateSpec builds the create request for a copy of old on image.
// primary holds at most one network (older engines accept one at create);
// extra the others, to connect afterwards.
func recreateSpec(old container.InspectResponse, img *dockerspec.DockerOCIImageConfig, image string) (
	cfg *container.Config, hostCfg *container.HostConfig, primary *network.NetworkingConfig, extra map[string]*network.EndpointSettings) {
	oc := *old.Config
	cfg = &oc
	cfg.Image = image
	cfg.Env = slices.Clone(oc.Env)
	cfg.Labels = maps.Clone(oc.Labels)
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	if len(old.ID) >= 12 && cfg.Hostname == old.ID[:12] {
		cfg.Hostname = "" // the engine's default; the new container gets its own
	}
	if img != nil {
		userSet := !slices.Equal(oc.Entrypoint, img.Entrypoint)
		switch {
		case !userSet:
			cfg.Entrypoint = nil
		case len(oc.Entrypoint) == 0:
			cfg.Entrypoint = []string{""} // the user cleared the image's entrypoint: keep it cleared
		}
		// With the image's entrypoint the command defaults to the image's
		// too; with the user's own entrypoint, Cmd is whatever they gave.
		if !userSet && slices.Equal(oc.Cmd, img.Cmd) {
			cfg.Cmd = nil
		}
		cfg.Env = slices.DeleteFunc(cfg.Env, func(kv string) bool { return slices.Contains(img.Env, kv) })
		for k, v := range img.Labels {
			if cfg.Labels[k] == v {
				delete(cfg.Labels, k)
			}
		}
		if cfg.User == img.User {
			cfg.User = ""
		}
		if cfg.WorkingDir == img.WorkingDir {
			cfg.WorkingDir = ""
		}
		if cfg.StopSignal == img.StopSignal {
			cfg.StopSignal = ""
		}
		if slices.Equal(cfg.Shell, img.Shell) {
			cfg.Shell = nil
		}
		if img.Healthcheck != nil && oc.Healthcheck != nil && reflect.DeepEqual(*img.Healthcheck, *oc.Healthcheck) {
			cfg.Healthcheck = nil
		}
		cfg.OnBuild = nil
		if len(oc.ExposedPorts) > 0 {
			cfg.ExposedPorts = network.PortSet{}
			for p := range oc.ExposedPorts {
				if _, ok := img.ExposedPorts[p.String()]; !ok {
					cfg.ExposedPorts[p] = struct{}{}
				}
			}
		}
		if len(oc.Volumes) > 0 {
			cfg.Volumes = map[string]struct{}{}
			for v := range oc.Volumes {
				if _, ok := img.Volumes[v]; !ok {
					cfg.Volumes[v] = struct{}{}
				}
			}
		}
	}

	hc := container.HostConfig{}
	if old.HostConfig != nil {
		hc = *old.HostConfig
	}
	hostCfg = &hc
	hostCfg.Mounts = slices.Clone(hc.Mounts)
	// Anonymous volumes (the image's VOLUMEs, or -v /path) would be made
	// anew and empty: mount the old ones by name instead.
	given := map[string]bool{}
	for _, b := range hc.Binds {
		parts := strings.Split(b, ":")
		if len(parts) >= 2 {
			given[parts[1]] = true
		} else {
			given[parts[0]] = true
		}
	}
	for _, m := range hc.Mounts {
		given[m.Target] = true
	}
	for _, mp := range old.Mounts {
		if mp.Type == mount.TypeVolume && mp.Name != "" && !given[mp.Destination] {
			hostCfg.Mounts = append(hostCfg.Mounts, mount.Mount{Type: mount.TypeVolume, Source: mp.Name, Target: mp.Destination, ReadOnly: !mp.RW})
		}
	}

	mode := hc.NetworkMode
	if mode.IsHost() || mode.IsNone() || mode.IsContainer() || old.NetworkSettings == nil {
		return cfg, hostCfg, nil, nil
	}
	primaryName := mode.NetworkName()
	if mode.IsDefault() {
		primaryName = "bridge"
	}
	extra = map[string]*network.EndpointSettings{}
	primary = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	for netName, ep := range old.NetworkSettings.Networks {
		if ep == nil {
			continue
		}
		userDefined := netName != "bridge" && netName != "host" && netName != "none"
		n := &network.EndpointSettings{
			IPAMConfig: ep.IPAMConfig.Copy(),
			Links:      slices.Clone(ep.Links),
			DriverOpts: maps.Clone(ep.DriverOpts),
			GwPriority: ep.GwPriority,
		}
		if userDefined {
			// Engines before API 1.45 add the short id as an alias; that
			// one belongs to the old container.
			n.Aliases = slices.DeleteFunc(slices.Clone(ep.Aliases), func(a string) bool { return len(old.ID) >= 12 && a == old.ID[:12] })
		}
		if netName == primaryName {
			primary.EndpointsConfig[netName] = n
		} else {
			extra[netName] = n
		}
	}
	return cfg, hostCfg, primary, extra
}
