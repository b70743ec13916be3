package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// NodeLister lists a cluster's app nodes; the Docker adapter is one.
type NodeLister interface {
	List(ctx context.Context) ([]ports.Node, error)
}

// resolveStorage picks the storage container on first use when the
// options leave it to the nodes: only the Docker engine knows the
// cluster's first node, and New contacts nothing. Every method that
// touches storage calls it first.
func (m *Manager) resolveStorage(ctx context.Context) error {
	if a, ok := m.db.(*dialectDatabase); ok {
		if err := a.resolve(ctx); err != nil {
			return err
		}
	}
	m.resolveMu.Lock()
	defer m.resolveMu.Unlock()
	if m.opts.StorageContainer != "" || m.opts.StorageHostPath != "" {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nodes, err := m.opts.Nodes.List(c)
	if err != nil {
		return fmt.Errorf("backup: find the node whose storage to copy: %w", err)
	}
	if len(nodes) == 0 {
		return errors.New("backup: no app node to copy the storage folder from (set backup.storage.container or host_path)")
	}
	m.opts.StorageContainer = nodes[0].Name
	return nil
}
