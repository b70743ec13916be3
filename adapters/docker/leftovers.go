package docker

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Leftover is the trace of an image change that a kill interrupted: the
// node's previous container, renamed <node>-nocobot-old.
type Leftover struct {
	Node      string // the node's name
	Container string // the leftover's name
	Image     string // the leftover's image: the node's image before the change
	// NodeExists says whether the node's own container exists too (the
	// new one, perhaps half made); without it, List reports the leftover
	// as the node.
	NodeExists bool
}

// Leftovers lists the cluster's interrupted image changes, by node name.
func (c *Containers) Leftovers(ctx context.Context) ([]Leftover, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	res, err := c.cli.ContainerList(cctx, client.ContainerListOptions{All: true, Filters: c.selector()})
	if err != nil {
		return nil, c.wrap("cluster", "list left-over containers", err)
	}
	names := map[string]bool{}
	for _, s := range res.Items {
		names[containerName(s.Names)] = true
	}
	var out []Leftover
	for _, s := range res.Items {
		name := containerName(s.Names)
		if node, ok := strings.CutSuffix(name, oldSuffix); ok {
			out = append(out, Leftover{Node: node, Container: name, Image: s.Image, NodeExists: names[node]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// Cleanup settles what a kill of nocobot can leave behind and returns the
// nodes it touched. A node that is only its leftover gets it back under
// its own name, as it was before the change. A node whose new container
// exists gets that change finished: the new container is made again from
// the leftover's configuration on the image it was given, and the
// leftover is removed. A running node whose restart policy is still held
// gets it back. After a Cleanup without error no leftover remains.
func (c *Containers) Cleanup(ctx context.Context) ([]string, error) {
	left, err := c.Leftovers(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, l := range left {
		if !l.NodeExists {
			_, err = c.find(ctx, l.Node, "clean up")
		} else {
			var ci container.InspectResponse
			ci, err = c.inspectNode(ctx, l.Node, "clean up")
			switch {
			case err != nil:
			case running(ci):
				err = &Error{Node: l.Node, Action: "clean up", Reason: "the node runs next to its left-over " + l.Container + ": stop the node and clean up again"}
			default:
				err = c.SetImage(ctx, l.Node, ci.Config.Image)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, l.Node)
	}
	// A kill between a node's start and the return of its restart policy
	// leaves it running with the policy held.
	nodes, err := c.List(ctx)
	if err != nil {
		return done, errors.Join(append(errs, err)...)
	}
	for _, n := range nodes {
		if !n.Running() {
			continue
		}
		_, held, err := c.RestartPolicyHeld(ctx, n.Name)
		if err != nil {
			errs = append(errs, err)
		}
		if !held {
			continue
		}
		if err := c.releaseRestart(ctx, n.Name, n.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, n.Name)
	}
	return done, errors.Join(errs...)
}
