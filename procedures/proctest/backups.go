package proctest

import (
	"context"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// Check implements procedures.Backups.
func (a actor) Check(ctx context.Context) error { return a.act(ctx, "backup-check") }

// Create implements procedures.Backups.
func (a actor) Create(ctx context.Context, req ports.BackupRequest, progress ports.Progress) (ports.BackupInfo, error) {
	w := a.w
	if err := a.act(ctx, "backup"); err != nil {
		return ports.BackupInfo{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		if n.running && req.RunID != "" && w.lb == ports.LBMaintenance {
			w.violations = append(w.violations, "backup taken while "+n.name+" runs during an upgrade")
		}
	}
	info := ports.BackupInfo{ID: fmt.Sprintf("b%d", len(w.backups)+1), Cluster: req.Cluster, Version: req.Version,
		Image: req.Image, Created: time.Now(), Size: 1 << 20, Verified: true, RunID: req.RunID, Kind: w.kinds.create()}
	b := backup{info: info, dbVersion: w.dbVersion}
	if w.redis.on {
		b.queue = append([]string{}, w.redis.queue...)
		b.info.Extras = []string{fmt.Sprintf("Redis queue: %d jobs saved", len(b.queue))}
		info = b.info
	}
	w.backups = append(w.backups, b)
	w.actions = append(w.actions, "backup-verified "+info.ID)
	progress("dump 1.0 MiB")
	return info, nil
}

// Verify implements procedures.Backups.
func (a actor) Verify(ctx context.Context, id string) (ports.BackupInfo, error) {
	w := a.w
	if err := a.act(ctx, "verify "+id); err != nil {
		return ports.BackupInfo{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.backups {
		if b.info.ID == id {
			return b.info, nil
		}
	}
	return ports.BackupInfo{}, fmt.Errorf("no backup %s", id)
}

// Restore implements procedures.Backups.
func (a actor) Restore(ctx context.Context, id string, progress ports.Progress) error {
	w := a.w
	if err := a.act(ctx, "restore "+id); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.nodes {
		if n.running {
			w.violations = append(w.violations, "restore while "+n.name+" runs")
		}
	}
	if w.lb == ports.LBNormal {
		w.violations = append(w.violations, "restore while traffic goes to the app nodes")
	}
	for _, b := range w.backups {
		if b.info.ID == id {
			w.dbVersion = b.dbVersion
			if w.redis.on {
				w.redis.gen++
				if b.queue != nil {
					w.redis.queue = append([]string{}, b.queue...)
				}
			}
			return nil
		}
	}
	return fmt.Errorf("no backup %s", id)
}

// AddBackup records a backup taken earlier (for restore actions).
func (w *World) AddBackup(id, version string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.backups = append(w.backups, backup{info: ports.BackupInfo{ID: id, Version: version, Verified: true}, dbVersion: version})
}

// AddBackupInfo records a backup taken earlier, as the adapter lists it.
func (w *World) AddBackupInfo(info ports.BackupInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.backups = append(w.backups, backup{info: info, dbVersion: info.Version})
}

// backups is the World seen as procedures.Backups: its List lists
// backups, where the World's own List lists nodes.
type backups struct{ actor }

// List implements procedures.Backups.
func (b backups) List(ctx context.Context) ([]ports.BackupInfo, error) {
	w := b.w
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ports.BackupInfo, 0, len(w.backups))
	for i := len(w.backups) - 1; i >= 0; i-- {
		out = append(out, w.backups[i].info)
	}
	return out, nil
}
