package procedures

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// describeCluster says which nodes run which image and where traffic goes.
func (rn *runner) describeCluster(ctx context.Context) string {
	return DescribeCluster(ctx, rn.c)
}

// DescribeCluster says, in one line, which nodes run which image and where
// the load balancer sends traffic, e.g. "Nodes: app-1 running
// nocobase/nocobase:1.7.14, app-2 exited (…:1.7.13). Traffic: maintenance page (503)."
func DescribeCluster(ctx context.Context, c *Cluster) string {
	return describeBesides(ctx, c, "")
}

// describeFailure is describeCluster after a failure: a part that cannot
// be read for the reason the failure gave already says so in a few
// words instead of repeating it.
func (rn *runner) describeFailure(ctx context.Context, failure error) string {
	return describeBesides(ctx, rn.c, failure.Error())
}

// describeBesides is DescribeCluster; an error contained in said (a
// message the reader has just seen) is not repeated.
func describeBesides(ctx context.Context, c *Cluster, said string) string {
	why := func(err error) string {
		if said != "" && (strings.Contains(said, err.Error()) || strings.Contains(said, causeOf(err))) {
			return "for the same reason"
		}
		return err.Error()
	}
	// A question is written also while its run is being stopped: it must
	// still say what the cluster is like.
	c1, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var b strings.Builder
	nodes, err := c.Nodes.List(c1)
	if err != nil {
		fmt.Fprintf(&b, "Nodes: unknown (%s).", why(err))
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
		fmt.Fprintf(&b, " Traffic: unknown (%s).", why(err))
	case mode == ports.LBMaintenance:
		b.WriteString(" Traffic: maintenance page (503).")
	case mode == ports.LBNormal:
		b.WriteString(" Traffic: to the app nodes.")
	default:
		fmt.Fprintf(&b, " Traffic: %s.", mode)
	}
	return b.String()
}

// causer is an adapter error whose reason is shared by many calls (a
// Docker engine that does not answer fails them all alike).
type causer interface{ Cause() string }

// causeOf is err's shared reason, or a string no message contains.
func causeOf(err error) string {
	var c causer
	if errors.As(err, &c) && c.Cause() != "" {
		return c.Cause()
	}
	return "\x00"
}

// SameCause reports whether b failed for the reason a gave already, so a
// message says it once.
func SameCause(a, b error) bool {
	if a == nil || b == nil {
		return false
	}
	return a.Error() == b.Error() || (causeOf(a) != "\x00" && causeOf(a) == causeOf(b))
}
