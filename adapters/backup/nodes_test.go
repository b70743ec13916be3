package backup

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nocobot/nocobot/ports"
)

type nodeList struct {
	calls atomic.Int32
	nodes []ports.Node
	err   error
}

func (n *nodeList) List(context.Context) ([]ports.Node, error) {
	n.calls.Add(1)
	return n.nodes, n.err
}

// With no storage setting the storage is the first node's, looked up when
// first needed: building the adapter contacts nothing.
func TestStorageFromFirstNode(t *testing.T) {
	f := newFixture(t, 1, 5)
	lc := &localContainers{folders: map[string]string{"app-1:/app/nocobase/storage": f.storage}}
	nodes := &nodeList{nodes: []ports.Node{{Name: "app-1"}, {Name: "app-2"}}}
	o := f.localOptions(t)
	o.StorageHostPath, o.Nodes = "", nodes
	m, err := New(o, lc, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if nodes.calls.Load() != 0 {
		t.Fatal("New listed the nodes")
	}
	if _, err := m.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	info := create(t, m, nil)
	if src := readManifest(t, f.dest, info.ID).Storage.Source; src != "container app-1:/app/nocobase/storage" {
		t.Errorf("storage source = %q", src)
	}
	if err := m.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := nodes.calls.Load(); n != 1 {
		t.Errorf("nodes listed %d times, want once", n)
	}

	down := &nodeList{err: errors.New("engine down")}
	o.Nodes = down
	m, err = New(o, lc, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(context.Background(), ports.BackupRequest{}, nil)
	if err == nil || !strings.Contains(err.Error(), "engine down") {
		t.Errorf("create with the engine down: %v", err)
	}
	o.Nodes = &nodeList{}
	m, _ = New(o, lc, testLog(t))
	if err := m.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "no app node") {
		t.Errorf("check with no nodes: %v", err)
	}
}
