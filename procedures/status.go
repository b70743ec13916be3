package procedures

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// NodeStatus is one node as a status shows it.
type NodeStatus struct {
	ports.Node
	// Version is what a running node reports; "" when it is not running
	// or did not answer (VersionErr says why).
	Version    string
	VersionErr error
}

// ClusterStatus is what a person checks before touching a cluster: its
// nodes, where traffic goes, the run in progress, the latest backup and
// the next maintenance windows. Each part carries its own error, so one
// unreachable system leaves the others shown.
type ClusterStatus struct {
	Cluster string

	Nodes    []NodeStatus
	NodesErr error

	Traffic    ports.LBMode
	TrafficErr error

	Active    *store.Run // nil: nothing runs
	ActiveErr error

	LatestBackup *ports.BackupInfo // nil: none
	BackupsErr   error

	// Windows are the cluster's maintenance windows, soonest first.
	Windows    []store.Window
	WindowsErr error
}

// statusTimeout bounds a whole status; versionTimeout one node's answer.
const (
	statusTimeout  = 20 * time.Second
	versionTimeout = 5 * time.Second
)

// Status gathers a cluster's status from its adapters and the store.
func (e *Engine) Status(ctx context.Context, cluster string) (ClusterStatus, error) {
	c, err := e.cluster(cluster)
	if err != nil {
		return ClusterStatus{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	s := ClusterStatus{Cluster: cluster}
	var wg sync.WaitGroup
	wg.Go(func() { s.Nodes, s.NodesErr = nodeStatuses(ctx, c) })
	wg.Go(func() { s.Traffic, s.TrafficErr = c.Balancer.Mode(ctx) })
	wg.Go(func() {
		bs, err := c.Backups.List(ctx)
		if err != nil {
			s.BackupsErr = err
		} else if len(bs) > 0 {
			s.LatestBackup = &bs[0]
		}
	})
	if r, err := e.store.ActiveRun(ctx, cluster); err == nil {
		s.Active = &r
	} else if !errors.Is(err, store.ErrNotFound) {
		s.ActiveErr = err
	}
	if ws, err := e.store.ListWindows(ctx); err != nil {
		s.WindowsErr = err
	} else {
		ws = slices.DeleteFunc(ws, func(w store.Window) bool { return w.Cluster != cluster })
		slices.SortFunc(ws, func(a, b store.Window) int { return a.NextStart.Compare(b.NextStart) })
		s.Windows = ws
	}
	wg.Wait()
	return s, nil
}

// nodeStatuses lists the nodes and asks every running one its version.
func nodeStatuses(ctx context.Context, c *Cluster) ([]NodeStatus, error) {
	nodes, err := c.Nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		out[i].Node = n
		if !n.Running() {
			continue
		}
		wg.Go(func() {
			vctx, cancel := context.WithTimeout(ctx, versionTimeout)
			defer cancel()
			out[i].Version, out[i].VersionErr = c.App.Version(vctx, n)
		})
	}
	wg.Wait()
	return out, nil
}

// cluster returns a configured cluster or an error naming the known ones.
func (e *Engine) cluster(name string) (*Cluster, error) {
	c, ok := e.clusters[name]
	if !ok {
		return nil, fmt.Errorf("unknown cluster %q (known: %s)", name, joinNames(e.ClusterNames()))
	}
	return c, nil
}
