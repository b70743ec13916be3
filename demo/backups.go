package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// backups is the simulated backup destination: a pg_dump of the database
// and a copy of the storage folder, verified, kept in memory.
type backups struct{ c *Cluster }

// Check implements procedures.Backups.
func (b backups) Check(ctx context.Context) error { return ctx.Err() }

// Create implements procedures.Backups.
func (b backups) Create(ctx context.Context, req ports.BackupRequest, progress ports.Progress) (ports.BackupInfo, error) {
	c := b.c
	c.mu.Lock()
	// An upgrade backs up with every node stopped, a maintenance with one
	// running: more than one writer makes an inconsistent backup.
	var writers []string
	for _, n := range c.nodes {
		if n.running {
			writers = append(writers, n.name)
		}
	}
	if len(writers) > 1 {
		c.violate("backup taken while %s wrote to the database", strings.Join(writers, " and "))
	}
	db := c.dbVersion
	c.mu.Unlock()
	parts := []string{"pg_dump nocobase: 41.7 MiB", "storage/uploads: 1,204 files, 212.4 MiB", "storage/plugins: 38 files", "verify: pg_restore --list ok, checksums ok"}
	for _, p := range parts {
		progress(p)
		if err := sleep(ctx, c.t.backup/time.Duration(len(parts))); err != nil {
			return ports.BackupInfo{}, err
		}
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	info := ports.BackupInfo{ID: fmt.Sprintf("%s-%s-%d", req.Cluster, now.UTC().Format("20060102-150405"), len(c.backups)+1),
		Cluster: req.Cluster, Version: req.Version, Image: req.Image, Created: now, Size: 265 << 20, Verified: true, RunID: req.RunID, Kind: ports.BackupDump}
	c.backups = append(c.backups, info)
	c.backupDB[info.ID] = db
	return info, nil
}

// Verify implements procedures.Backups.
func (b backups) Verify(ctx context.Context, id string) (ports.BackupInfo, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	for _, i := range b.c.backups {
		if i.ID == id {
			return i, ctx.Err()
		}
	}
	return ports.BackupInfo{}, fmt.Errorf("no backup %s", id)
}

// Restore implements procedures.Backups: the database goes back to the
// version it had when the backup was taken.
func (b backups) Restore(ctx context.Context, id string, progress ports.Progress) error {
	c := b.c
	if _, err := b.Verify(ctx, id); err != nil {
		return err
	}
	c.mu.Lock()
	for _, n := range c.nodes {
		if n.running {
			c.violate("restore while %s ran", n.name)
		}
	}
	c.mu.Unlock()
	for _, p := range []string{"pg_restore --clean nocobase", "storage folder put back", "verify: row counts match the backup"} {
		progress(p)
		if err := sleep(ctx, c.t.restore/3); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dbVersion = c.backupDB[id]
	return nil
}

// PlanKind implements procedures.Backups: the simulated server takes
// dumps (a real PostgreSQL with every node stopped copies in place).
func (b backups) PlanKind(ctx context.Context, nodesStopped bool) (kind, reason string) {
	return ports.BackupDump, "the simulated database is dumped"
}

// Export implements procedures.Backups: a dump is portable already.
func (b backups) Export(ctx context.Context, id string, progress ports.Progress) (ports.BackupInfo, error) {
	return b.Verify(ctx, id)
}

// List implements procedures.Backups, newest first.
func (b backups) List(ctx context.Context) ([]ports.BackupInfo, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	out := make([]ports.BackupInfo, 0, len(b.c.backups))
	for i := len(b.c.backups) - 1; i >= 0; i-- {
		out = append(out, b.c.backups[i])
	}
	return out, ctx.Err()
}
