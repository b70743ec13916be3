package docker

import (
	"context"
	"errors"
	"io"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// nodeSet is what both kinds of node set do; Cluster forwards to one.
type nodeSet interface {
	ports.Nodes
	StopAll(ctx context.Context) error
	StartRest(ctx context.Context, first string) error
	Previous(ctx context.Context, name string) (image, digest, ref string, err error)
	Resolve(ctx context.Context, image string) (ImageInfo, error)
	Leftovers(ctx context.Context) ([]Leftover, error)
	Cleanup(ctx context.Context) ([]string, error)
}

var (
	_ nodeSet = (*Containers)(nil)
	_ nodeSet = (*Swarm)(nil)
)

// Cluster is the app nodes of one NocoBase cluster on one engine: plain
// containers or the slots of a Swarm service, chosen by New from the
// options. Its Engine gives Exec, CopyFrom and CopyTo on any container.
type Cluster struct {
	engine *Engine
	nodeSet
}

var _ ports.Nodes = (*Cluster)(nil)

// New builds the cluster's node set: Containers when opts.Labels is set,
// Swarm when opts.SwarmService is (exactly one of them must be). It does
// not contact the engine.
func New(opts Options, log zerolog.Logger) (*Cluster, error) {
	if (len(opts.Labels) == 0) == (opts.SwarmService == "") {
		return nil, errors.New("docker: set either a label selector or a Swarm service name (and not both)")
	}
	if opts.SwarmService != "" {
		s, err := NewSwarm(opts, log)
		if err != nil {
			return nil, err
		}
		return &Cluster{engine: s.Engine, nodeSet: s}, nil
	}
	c, err := NewContainers(opts, log)
	if err != nil {
		return nil, err
	}
	return &Cluster{engine: c.Engine, nodeSet: c}, nil
}

// Engine returns the connection the nodes are driven through.
func (c *Cluster) Engine() *Engine { return c.engine }

// Exec runs a command in any container of the engine (see Engine.Exec).
func (c *Cluster) Exec(ctx context.Context, container string, cmd []string, stdin io.Reader, stdout io.Writer) error {
	return c.engine.Exec(ctx, container, cmd, stdin, stdout)
}

// CopyFrom reads a path out of any container (see Engine.CopyFrom).
func (c *Cluster) CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error) {
	return c.engine.CopyFrom(ctx, container, path)
}

// CopyTo extracts a tar stream into any container (see Engine.CopyTo).
func (c *Cluster) CopyTo(ctx context.Context, container, dir string, tarStream io.Reader) error {
	return c.engine.CopyTo(ctx, container, dir, tarStream)
}

// Ping checks the engine (see Engine.Ping).
func (c *Cluster) Ping(ctx context.Context) (string, error) { return c.engine.Ping(ctx) }

// Close releases the engine connection.
func (c *Cluster) Close() error { return c.engine.Close() }
