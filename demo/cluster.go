package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
)

// The demo's cluster is the engine tests' simulated one (proctest.World),
// paced like a real cluster: its proportions (docs/nocobase.md: a start
// takes 15–45 s, a plugin enable about 8 s), shrunk so the whole demo
// lasts about a minute.
var realistic = proctest.Pace{
	Stop: 400 * time.Millisecond, ContainerStart: 200 * time.Millisecond,
	Refused: 500 * time.Millisecond, Boot: 1800 * time.Millisecond, Migrate: 1500 * time.Millisecond,
	Plugin: 1500 * time.Millisecond, Pull: 1200 * time.Millisecond, Backup: 1500 * time.Millisecond,
	Restore: 1200 * time.Millisecond, LB: 100 * time.Millisecond,
}

const imageRepo = "nocobase/nocobase"

// simCluster is the simulated cluster and what the demo reports of it.
type simCluster struct{ *proctest.World }

// newCluster makes a running cluster of nodes named names on version.
func newCluster(p proctest.Pace, version string, names ...string) simCluster {
	w := proctest.NewWorld(imageRepo+":"+version, true, names...)
	w.SetPace(p)
	return simCluster{w}
}

// procedures is the cluster as the engine drives it.
func (c simCluster) procedures(name string) *procedures.Cluster {
	pc := c.Cluster(name)
	pc.ImageRepo = imageRepo
	// Plain containers, as deploy/compose.yaml runs them: each node has
	// its own environment.
	pc.NodeEnv, _ = pc.Nodes.(ports.NodeEnv)
	pc.HealthTimeout, pc.CheckpointTimeout, pc.StepTimeout = time.Minute, 30*time.Minute, 5*time.Minute
	return pc
}

func versionOf(image string) string {
	_, tag, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	return tag
}

// State is one line about the cluster, e.g. "3/3 nodes running 2.2.16, database at 2.2.16, traffic normal".
func (c simCluster) State() string {
	nodes, _ := c.List(context.Background())
	running := 0
	var vs []string
	for _, n := range nodes {
		if n.Running() {
			running++
		}
		if v := versionOf(n.Image); !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return fmt.Sprintf("%d/%d nodes running %s, database at %s, traffic %s", running, len(nodes), strings.Join(vs, "+"), c.DBVersion(), c.LB())
}

// settled reports whether every node runs healthy on version, the
// database is at it, and traffic goes to the nodes.
func (c simCluster) settled(version string) bool {
	ctx := context.Background()
	nodes, _ := c.List(ctx)
	for _, n := range nodes {
		s, err := c.Probe(ctx, n.URL)
		if versionOf(n.Image) != version || err != nil || !s.Healthy {
			return false
		}
	}
	return c.DBVersion() == version && c.LB() == ports.LBNormal
}
