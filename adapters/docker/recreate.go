package docker

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

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
