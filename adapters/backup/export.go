package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// Export finishes a backup once traffic is back. A KindCopy backup is made
// portable: the copy is dumped into the backup folder and read back while
// written, like any dump, and then dropped unless KeepCopy is set. A
// folder dump written uncompressed inside the downtime is compressed
// (compact.go), and so are dumps earlier runs left uncompressed
// (leftovers.go). Any other backup is returned as it is.
func (m *Manager) Export(ctx context.Context, id string, progress ports.Progress) (ports.BackupInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if progress == nil {
		progress = func(string) {}
	}
	info, err := m.export(ctx, id, progress)
	if err == nil {
		m.settleLeftovers(ctx, id, progress)
		m.compactLeftovers(ctx, id, progress)
	}
	return info, err
}

func (m *Manager) export(ctx context.Context, id string, progress ports.Progress) (ports.BackupInfo, error) {
	man, dir, err := m.load(id)
	if err != nil {
		return ports.BackupInfo{}, fmt.Errorf("export: %w", err)
	}
	m.dropReplaced(ctx) // traffic is back: their drop costs no downtime
	if man.hasDatabaseDump() {
		if err := m.compact(ctx, dir, man, progress); err != nil {
			return ports.BackupInfo{}, fmt.Errorf("export %s: %w", id, err)
		}
		return man.info(), nil
	}
	name := man.liveCopy()
	c, ok := m.db.(copier)
	if name == "" || !ok {
		return ports.BackupInfo{}, fmt.Errorf("export %s: it has no dump and no in-server copy to take one from", id)
	}
	if err := c.verifyCopy(ctx, name, man.Database.CopySignature, man.Database.CopyOpened); err != nil {
		return ports.BackupInfo{}, fmt.Errorf("export %s: %w", id, err)
	}
	// The copy is closed to connections: opened for the dump, recorded
	// first so that a copy found open later is known to be ours.
	if !man.Database.CopyOpened {
		man.Database.CopyOpened = true
		if err := writeManifest(dir, man); err != nil {
			return ports.BackupInfo{}, fmt.Errorf("export %s: %w (the in-server copy stays the backup: retry)", id, err)
		}
	}
	if err := c.openCopy(ctx, name, true); err != nil {
		return ports.BackupInfo{}, fmt.Errorf("export %s: %w (the in-server copy stays the backup: retry)", id, err)
	}
	closeCopy := func() {
		if err := c.openCopy(context.WithoutCancel(ctx), name, false); err != nil {
			m.log.Warn().Err(err).Str("copy", name).Msg("export: could not close the in-server copy to connections again")
			return
		}
		man.Database.CopyOpened = false
	}
	start := time.Now()
	removeDump := func() error {
		return errors.Join(os.RemoveAll(filepath.Join(dir, partDatabase)), os.RemoveAll(filepath.Join(dir, partDatabaseDir)))
	}
	parts, err := m.dumpDatabase(ctx, dir, c.copyAsDatabase(name), m.keptLevel(), progress)
	if err != nil {
		removeDump()
		closeCopy()
		_ = writeManifest(dir, man)
		return ports.BackupInfo{}, fmt.Errorf("export %s: %w (the in-server copy is kept)", id, err)
	}
	man.Parts = append(man.Parts, parts...)
	if m.opts.KeepCopy {
		closeCopy()
	}
	// The manifest naming the verified dump goes to disk before the copy
	// goes: until then the copy is the backup's only database.
	if err := writeManifest(dir, man); err != nil {
		return ports.BackupInfo{}, errors.Join(fmt.Errorf("export %s: %w (the in-server copy is kept and stays the backup: retry)", id, err), removeDump())
	}
	if !m.opts.KeepCopy {
		if err := c.dropCopy(ctx, name); err != nil {
			m.log.Warn().Err(err).Str("copy", name).Msg("export: could not drop the in-server copy")
		} else {
			man.Database.CopyGone = true
			if err := writeManifest(dir, man); err != nil {
				// A restore finds the copy gone and restores the dump.
				m.log.Warn().Err(err).Str("copy", name).Msg("export: could not record that the in-server copy was dropped")
			}
		}
	}
	progress(fmt.Sprintf("export %s: database dumped from the in-server copy and read back whole in %s", id,
		time.Since(start).Round(100*time.Millisecond)))
	return man.info(), nil
}
