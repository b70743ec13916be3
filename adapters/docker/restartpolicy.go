package docker

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// While nocobot keeps a node stopped, the node's restart policy must not
// start it: with "always" (NocoBase's compose examples use it) a restart
// of the Docker daemon starts every such container at once, on a version
// the database may not be migrated to. So Stop (and SetImage) hold the
// policy at "no" and Start gives the node its own policy back.
//
// A container's labels cannot change after it is created, and the policy
// must survive a crash of nocobot between Stop and Start. The node's own
// policy is therefore recorded on the engine itself, in the labels of an
// empty marker volume named <node>-nocobot-restart, created before the
// policy is changed and removed after it is given back. The marker follows
// the node across SetImage (it is keyed by name), and a re-created
// container inherits the held "no" from the one it replaces.

const (
	holdSuffix = "-nocobot-restart"
	labelNode  = "nocobot.node"
)

func holdVolume(node string) string { return node + holdSuffix }

func formatPolicy(p container.RestartPolicy) string {
	if p.Name == container.RestartPolicyOnFailure && p.MaximumRetryCount > 0 {
		return fmt.Sprintf("%s:%d", p.Name, p.MaximumRetryCount)
	}
	return string(p.Name)
}

func parsePolicy(s string) (container.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch p.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped, container.RestartPolicyDisabled:
		if hasCount {
			return p, fmt.Errorf("restart policy %q: only on-failure takes a count", s)
		}
	case container.RestartPolicyOnFailure:
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return p, fmt.Errorf("restart policy %q: bad retry count", s)
			}
			p.MaximumRetryCount = n
		}
	default:
		return p, fmt.Errorf("restart policy %q: unknown", s)
	}
	return p, nil
}

// holdRestart records the node's restart policy and sets it to "no"; ci
// is updated to match. A node whose policy is already "no" (held, or its
// own) is left alone.
func (c *Containers) holdRestart(ctx context.Context, name string, ci *container.InspectResponse) error {
	if ci.HostConfig == nil {
		return nil
	}
	pol := ci.HostConfig.RestartPolicy
	if pol.Name == "" || pol.Name == container.RestartPolicyDisabled {
		return nil
	}
	const action = "hold the restart policy"
	cctx, cancel := c.call(ctx)
	defer cancel()
	vol := holdVolume(name)
	_, err := c.cli.VolumeInspect(cctx, vol, client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		// A marker that is already there was made moments before a crash,
		// from this same policy: keep it.
		_, err = c.cli.VolumeCreate(cctx, client.VolumeCreateOptions{Name: vol,
			Labels: map[string]string{labelNode: name, LabelRestartPolicy: formatPolicy(pol)}})
	}
	if err != nil {
		return c.wrap(name, action+": record it", err)
	}
	no := container.RestartPolicy{Name: container.RestartPolicyDisabled}
	if _, err := c.cli.ContainerUpdate(cctx, ci.ID, client.ContainerUpdateOptions{RestartPolicy: &no}); err != nil {
		return c.wrap(name, action, err)
	}
	ci.HostConfig.RestartPolicy = no
	c.log.Info().Str("node", name).Str("policy", formatPolicy(pol)).Msg("restart policy held at no while nocobot keeps the node stopped")
	return nil
}

// releaseRestart gives a node the restart policy holdRestart recorded
// and removes the record. Without a record it does nothing.
func (c *Containers) releaseRestart(ctx context.Context, name, id string) error {
	const action = "give the restart policy back"
	cctx, cancel := c.call(ctx)
	defer cancel()
	vol := holdVolume(name)
	res, err := c.cli.VolumeInspect(cctx, vol, client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return c.wrap(name, action, err)
	}
	pol, err := parsePolicy(res.Volume.Labels[LabelRestartPolicy])
	if err != nil {
		return &Error{Node: name, Action: action, Reason: "volume " + vol + ": " + err.Error(), Err: cerrdefs.ErrInvalidArgument}
	}
	if _, err := c.cli.ContainerUpdate(cctx, id, client.ContainerUpdateOptions{RestartPolicy: &pol}); err != nil {
		return c.wrap(name, action, err)
	}
	if _, err := c.cli.VolumeRemove(cctx, vol, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return c.wrap(name, action+": remove the record "+vol, err)
	}
	c.log.Info().Str("node", name).Str("policy", formatPolicy(pol)).Msg("restart policy given back")
	return nil
}

// RestartPolicyHeld reports the node's own restart policy while nocobot
// holds it at "no" (ok false when it does not).
func (c *Containers) RestartPolicyHeld(ctx context.Context, name string) (policy string, ok bool, err error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	res, err := c.cli.VolumeInspect(cctx, holdVolume(name), client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, c.wrap(name, "restart policy", err)
	}
	return res.Volume.Labels[LabelRestartPolicy], true, nil
}
