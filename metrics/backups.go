package metrics

import (
	"context"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// Backups wraps a cluster's backup adapter so every backup and restore
// is measured: the engine's events carry a step's time but not the size.
// The adapter is also listed at each scrape for the newest verified
// backup's time.
func (m *Metrics) Backups(cluster string, b ports.Backups) ports.Backups {
	m.backups.add(cluster, b)
	return &measuredBackups{Backups: b, m: m, cluster: cluster}
}

type measuredBackups struct {
	ports.Backups
	m       *Metrics
	cluster string
}

// listTimeout bounds the look-up of a restored backup's size.
const listTimeout = 10 * time.Second

func (b *measuredBackups) Create(ctx context.Context, req ports.BackupRequest, p ports.Progress) (ports.BackupInfo, error) {
	start := time.Now()
	info, err := b.Backups.Create(ctx, req, p)
	if err != nil {
		b.m.backupFailures.WithLabelValues(b.cluster, "backup").Inc()
		return info, err
	}
	b.m.backupSeconds.WithLabelValues(b.cluster, "backup").Observe(time.Since(start).Seconds())
	b.m.backupBytes.WithLabelValues(b.cluster, "backup").Observe(float64(info.Size))
	return info, nil
}

func (b *measuredBackups) Restore(ctx context.Context, id string, p ports.Progress) error {
	start := time.Now()
	if err := b.Backups.Restore(ctx, id, p); err != nil {
		b.m.backupFailures.WithLabelValues(b.cluster, "restore").Inc()
		return err
	}
	b.m.backupSeconds.WithLabelValues(b.cluster, "restore").Observe(time.Since(start).Seconds())
	// Restore says nothing of the size; the backup's listing does. A
	// listing that fails leaves the size unrecorded, not the restore.
	c, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	if list, err := b.Backups.List(c); err == nil {
		for _, info := range list {
			if info.ID == id {
				b.m.backupBytes.WithLabelValues(b.cluster, "restore").Observe(float64(info.Size))
				break
			}
		}
	}
	return nil
}
