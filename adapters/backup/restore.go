package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nocobot/nocobot/procedures"
)

// RestoreOptions changes what Restore accepts.
type RestoreOptions struct {
	// Force restores a backup whose manifest names another cluster or
	// database.
	Force bool
}

// Restore verifies a backup, then puts the database and the storage
// folder back exactly as they were when it was taken.
func (m *Manager) Restore(ctx context.Context, id string, progress procedures.Progress) error {
	return m.RestoreWith(ctx, id, RestoreOptions{Force: m.opts.Force}, progress)
}

// RestoreWith is Restore with options.
func (m *Manager) RestoreWith(ctx context.Context, id string, ro RestoreOptions, progress procedures.Progress) error {
	if err := m.resolveStorage(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if progress == nil {
		progress = func(string) {}
	}
	man, dir, err := m.load(id)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if d := man.Database.Dialect; d != "" && d != m.db.dialect() {
		return fmt.Errorf("restore %s refused: it holds a %s database, this cluster's is %s", id, d, m.db.dialect())
	}
	var mismatch []string
	if man.Cluster != m.opts.Cluster {
		mismatch = append(mismatch, fmt.Sprintf("cluster %q (this is %q)", man.Cluster, m.opts.Cluster))
	}
	if man.Database.Name != m.db.name() {
		mismatch = append(mismatch, fmt.Sprintf("database %q (this is %q)", man.Database.Name, m.db.name()))
	}
	if len(mismatch) > 0 {
		if !ro.Force {
			return fmt.Errorf("restore %s refused: the backup belongs to %s; force it to restore anyway", id, strings.Join(mismatch, " and "))
		}
		m.log.Warn().Str("backup", id).Strs("mismatch", mismatch).Msg("forced restore into another cluster or database")
		progress("restore: forced although the backup belongs to " + strings.Join(mismatch, " and "))
	}
	progress(fmt.Sprintf("restore %s: checking checksums (%s)", id, humanBytes(man.Size())))
	if err := verifyParts(ctx, dir, man); err != nil {
		return fmt.Errorf("restore %s refused, nothing was changed: the backup failed verification: %w", id, err)
	}
	start := time.Now()
	log := m.log.With().Str("backup", id).Logger()
	log.Info().Msg("restore started")

	progress(fmt.Sprintf("database: restoring %s into %s (all or nothing)", humanBytes(partSize(man, partDatabase)), m.db.name()))
	if err := m.restorePart(ctx, dir, partDatabase, "database", progress, m.db.restore); err != nil {
		log.Error().Err(err).Msg("database restore failed")
		return fmt.Errorf("restore %s: %w (the database is as it was; storage untouched)", id, err)
	}
	progress("database: restored")

	progress(fmt.Sprintf("storage: restoring %s into %s", humanBytes(partSize(man, partStorage)), m.storageSource()))
	if err := m.restorePart(ctx, dir, partStorage, "storage", progress, func(ctx context.Context, r io.Reader) error {
		return m.restoreStorage(ctx, r, id, progress)
	}); err != nil {
		log.Error().Err(err).Msg("storage restore failed")
		return fmt.Errorf("restore %s: database restored, but storage: %w", id, err)
	}
	progress("storage: restored")
	took := time.Since(start).Round(100 * time.Millisecond)
	log.Info().Dur("took", took).Msg("restore done")
	progress(fmt.Sprintf("restore %s done in %s", id, took))
	return nil
}

func partSize(man *Manifest, name string) int64 {
	for _, p := range man.Parts {
		if p.Name == name {
			return p.Size
		}
	}
	return 0
}

func (m *Manager) restorePart(ctx context.Context, dir, name, label string, progress procedures.Progress,
	restore func(ctx context.Context, r io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	var n countingWriter
	stop := m.reportSize(label, &n, progress)
	defer stop()
	return restore(ctx, io.TeeReader(f, &n))
}

func (m *Manager) restoreStorage(ctx context.Context, r io.Reader, id string, progress procedures.Progress) error {
	if m.opts.StorageHostPath != "" {
		if err := os.MkdirAll(m.opts.StorageHostPath, 0o755); err != nil {
			return err
		}
		return replaceHostFolder(ctx, m.opts.StorageHostPath, r, m.opts.Excludes, ".nocobot-restore-"+id)
	}
	// Clearing the folder needs a command in the container, which works
	// only while it runs; a stopped node's folder can only be written
	// over.
	err := m.containers.Exec(ctx, m.opts.StorageContainer,
		append([]string{"sh", "-c", clearContainerScript, "nocobot", m.opts.StoragePath}, topLevel(m.opts.Excludes)...), nil, nil)
	if err != nil {
		m.log.Warn().Err(err).Msg("storage: could not clear the folder in the container; writing over it")
		progress("storage: the folder could not be emptied first (is " + m.opts.StorageContainer +
			" stopped?): files added since the backup stay; restored files are written over")
	}
	return m.containers.CopyTo(ctx, m.opts.StorageContainer, m.opts.StoragePath, r)
}
