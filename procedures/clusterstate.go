package procedures

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// describeCluster says which nodes run which image and where traffic goes.
func (x *runner) describeCluster(ctx context.Context) string {
	return DescribeCluster(ctx, x.c)
}

// DescribeCluster says, in one line, which nodes run which image and where
// the load balancer sends traffic, e.g. "Nodes: app-1 running
// nocobase/nocobase:1.7.14, app-2 exited (…:1.7.13). Traffic: maintenance page (503)."
func DescribeCluster(ctx context.Context, c *Cluster) string {
	// A question is written also while its run is being stopped: it must
	// still say what the cluster is like.
	c1, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var b strings.Builder
	nodes, err := c.Nodes.List(c1)
	if err != nil {
		fmt.Fprintf(&b, "Nodes: unknown (%v).", err)
	} else {
		parts := make([]string, len(nodes))
		for i, n := range nodes {
			parts[i] = fmt.Sprintf("%s %s %s", n.Name, n.State, n.Image)
		}
		fmt.Fprintf(&b, "Nodes: %s.", strings.Join(parts, ", "))
	}
	mode, err := c.Balancer.Mode(c1)
	switch {
	case err != nil:
		fmt.Fprintf(&b, " Traffic: unknown (%v).", err)
	case mode == LBMaintenance:
		b.WriteString(" Traffic: maintenance page (503).")
	case mode == LBNormal:
		b.WriteString(" Traffic: to the app nodes.")
	default:
		fmt.Fprintf(&b, " Traffic: %s.", mode)
	}
	return b.String()
}
