package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/nocobot/nocobot/ports"
)

// A node's own environment is what was set on its container, the image's
// defaults left out: two nodes on different images still compare alike
// when their settings are. Swarm's nodes share their service's, so only
// plain containers have one (Cluster.NodeEnv).

var _ ports.NodeEnv = (*Containers)(nil)

// NodeEnv returns the nodes' own environments: the containers', or nil
// for a Swarm service, whose nodes cannot differ.
func (c *Cluster) NodeEnv() ports.NodeEnv {
	if ct, ok := c.nodeSet.(*Containers); ok {
		return ct
	}
	return nil
}

// EnvHashes returns each variable set on the node (not by its image) with
// the SHA-256 of its value, so that callers compare values they never see.
func (c *Containers) EnvHashes(ctx context.Context, name string) (map[string]string, error) {
	const action = "read environment"
	cur, old, haveCur, _, err := c.lookup(ctx, name, action)
	if err != nil {
		return nil, err
	}
	ci := cur
	if !haveCur {
		ci = old // the node is its leftover until an operation restores it
	}
	if ci.Config == nil {
		return map[string]string{}, nil
	}
	var imgEnv []string
	cctx, cancel := c.call(ctx)
	defer cancel()
	if img, err := c.cli.ImageInspect(cctx, ci.Image); err == nil && img.Config != nil {
		imgEnv = img.Config.Env
	} else if err != nil && !cerrdefs.IsNotFound(err) {
		return nil, c.wrap(name, action+": inspect its image", err)
	}
	out := map[string]string{}
	for _, kv := range ci.Config.Env {
		if slices.Contains(imgEnv, kv) {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		sum := sha256.Sum256([]byte(v))
		out[k] = hex.EncodeToString(sum[:])
	}
	return out, nil
}

// SetEnv re-creates a stopped node, as SetImage does and with its image,
// with key=value in its environment, or without key when value is "".
// A node that already is so is left alone. The node stays stopped, its
// restart policy held (restartpolicy.go).
func (c *Containers) SetEnv(ctx context.Context, name, key, value string) error {
	const action = "set environment"
	if key == "" || strings.Contains(key, "=") {
		return &Error{Node: name, Action: action, Reason: "bad variable name " + key, Err: cerrdefs.ErrInvalidArgument}
	}
	cur, _, haveCur, haveOld, err := c.lookup(ctx, name, action)
	if err != nil {
		return err
	}
	if haveCur && haveOld && !running(cur) {
		// An interrupted change: settle it first, as Start does.
		ref, err := c.sameImage(ctx, name, action, cur)
		if err != nil {
			return err
		}
		if err := c.SetImage(ctx, name, ref); err != nil {
			return err
		}
	}
	ci, err := c.find(ctx, name, action)
	if err != nil {
		return err
	}
	if running(ci) {
		return &Error{Node: name, Action: action, Reason: "node is running: stop it first", Err: cerrdefs.ErrConflict}
	}
	if ci.Config == nil {
		return &Error{Node: name, Action: action, Reason: "container has no configuration", Err: cerrdefs.ErrInvalidArgument}
	}
	if slices.Equal(withEnv(ci.Config.Env, key, value), ci.Config.Env) {
		return nil
	}
	ref, err := c.sameImage(ctx, name, action, ci)
	if err != nil {
		return err
	}
	if err := c.holdRestart(ctx, name, &ci); err != nil {
		return err
	}
	if err := c.rename(ctx, ci.ID, name+oldSuffix, action+": rename the old container"); err != nil {
		return err
	}
	return c.recreate(ctx, name, ref, ci, &envChange{key: key, value: value})
}

// sameImage is a reference to exactly the image the container runs: its
// tag while the tag still names that image, else the image's digest in
// the tag's repository. A tag moved since (a pull, another cluster's
// upgrade) would put the node on another NocoBase version, which would
// then run its upgrade beside the others: without a digest the change
// is refused.
func (c *Containers) sameImage(ctx context.Context, name, action string, ci container.InspectResponse) (string, error) {
	tag := ci.Config.Image
	cctx, cancel := c.call(ctx)
	defer cancel()
	if ti, err := c.cli.ImageInspect(cctx, tag); err == nil && ti.ID == ci.Image {
		return tag, nil
	}
	ri, err := c.cli.ImageInspect(cctx, ci.Image)
	if err != nil {
		return "", c.wrap(name, action+": inspect the image it runs", err)
	}
	if ref, perr := reference.ParseNormalizedNamed(tag); perr == nil {
		if d := repoDigest(ri.RepoDigests, ref.Name()); d != "" {
			return reference.FamiliarName(ref) + "@" + d, nil
		}
	}
	return "", &Error{Node: name, Action: action, Err: cerrdefs.ErrFailedPrecondition,
		Reason: fmt.Sprintf("its tag %s now names another image than the %s it runs, and that image has no digest to name it by: "+
			"re-creating it would change its NocoBase version; tag the image it runs again (docker tag %s %s) and retry", tag, shortID(ci.Image), shortID(ci.Image), tag)}
}

// withEnv is env with key set to value (in place, else appended), or
// without key when value is "".
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	done := false
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != key {
			out = append(out, kv)
			continue
		}
		if value != "" && !done {
			out = append(out, key+"="+value)
			done = true
		}
	}
	if value != "" && !done {
		out = append(out, key+"="+value)
	}
	return out
}
