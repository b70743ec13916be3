package procedures

import (
	"context"

	"github.com/nocobot/nocobot/ports"
)

// fenced returns the cluster as a run sees it: every adapter call first
// checks that the run's lease was confirmed within half its time, so an
// engine that may have lost the run never begins an outside action.
func fenced(c *Cluster, l *lease) *Cluster {
	fc := *c
	fc.Nodes = fencedNodes{in: c.Nodes, l: l}
	fc.App = fencedApp{in: c.App, l: l}
	fc.Backups = fencedBackups{in: c.Backups, l: l}
	fc.Balancer = fencedBalancer{in: c.Balancer, l: l}
	return &fc
}

type fencedNodes struct {
	in ports.Nodes
	l  *lease
}

func (f fencedNodes) List(ctx context.Context) ([]ports.Node, error) {
	if err := f.l.check(); err != nil {
		return nil, err
	}
	return f.in.List(ctx)
}

func (f fencedNodes) Stop(ctx context.Context, name string) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.Stop(ctx, name)
}

func (f fencedNodes) Start(ctx context.Context, name string) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.Start(ctx, name)
}

func (f fencedNodes) SetImage(ctx context.Context, name, image string) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.SetImage(ctx, name, image)
}

func (f fencedNodes) Pull(ctx context.Context, image string, progress ports.Progress) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.Pull(ctx, image, progress)
}

func (f fencedNodes) Resolve(ctx context.Context, image string) (ports.ImageInfo, error) {
	if err := f.l.check(); err != nil {
		return ports.ImageInfo{}, err
	}
	return f.in.Resolve(ctx, image)
}

func (f fencedNodes) Cleanup(ctx context.Context) ([]string, error) {
	if err := f.l.check(); err != nil {
		return nil, err
	}
	return f.in.Cleanup(ctx)
}

type fencedApp struct {
	in ports.App
	l  *lease
}

func (f fencedApp) WaitHealthy(ctx context.Context, node ports.Node, progress ports.Progress) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.WaitHealthy(ctx, node, progress)
}

func (f fencedApp) Version(ctx context.Context, node ports.Node) (string, error) {
	if err := f.l.check(); err != nil {
		return "", err
	}
	return f.in.Version(ctx, node)
}

func (f fencedApp) Probe(ctx context.Context, baseURL string) (ports.AppStatus, error) {
	if err := f.l.check(); err != nil {
		return ports.AppStatus{}, err
	}
	return f.in.Probe(ctx, baseURL)
}

func (f fencedApp) Plugin(ctx context.Context, node ports.Node, action, pkg string, progress ports.Progress) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.Plugin(ctx, node, action, pkg, progress)
}

func (f fencedApp) CheckKey(ctx context.Context, node ports.Node) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.CheckKey(ctx, node)
}

type fencedBackups struct {
	in ports.Backups
	l  *lease
}

func (f fencedBackups) Check(ctx context.Context) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.Check(ctx)
}

func (f fencedBackups) Create(ctx context.Context, req ports.BackupRequest, progress ports.Progress) (ports.BackupInfo, error) {
	if err := f.l.check(); err != nil {
		return ports.BackupInfo{}, err
	}
	return f.in.Create(ctx, req, progress)
}

func (f fencedBackups) Verify(ctx context.Context, id string) (ports.BackupInfo, error) {
	if err := f.l.check(); err != nil {
		return ports.BackupInfo{}, err
	}
	return f.in.Verify(ctx, id)
}

func (f fencedBackups) Restore(ctx context.Context, id string, progress ports.Progress) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.Restore(ctx, id, progress)
}

// PlanKind only reads; it is not an action the fence guards.
func (f fencedBackups) PlanKind(ctx context.Context, nodesStopped bool) (kind, reason string) {
	return f.in.PlanKind(ctx, nodesStopped)
}

func (f fencedBackups) Export(ctx context.Context, id string, progress ports.Progress) (ports.BackupInfo, error) {
	if err := f.l.check(); err != nil {
		return ports.BackupInfo{}, err
	}
	return f.in.Export(ctx, id, progress)
}

func (f fencedBackups) List(ctx context.Context) ([]ports.BackupInfo, error) {
	if err := f.l.check(); err != nil {
		return nil, err
	}
	return f.in.List(ctx)
}

type fencedBalancer struct {
	in ports.Balancer
	l  *lease
}

func (f fencedBalancer) SetMode(ctx context.Context, mode ports.LBMode) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.SetMode(ctx, mode)
}

func (f fencedBalancer) Mode(ctx context.Context) (ports.LBMode, error) {
	if err := f.l.check(); err != nil {
		return ports.LBUnknown, err
	}
	return f.in.Mode(ctx)
}

// compile-time checks that the fenced adapters are what they wrap.
var (
	_ ports.Nodes    = fencedNodes{}
	_ ports.App      = fencedApp{}
	_ ports.Backups  = fencedBackups{}
	_ ports.Balancer = fencedBalancer{}
)
