package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// List returns the cluster's complete backups, newest first.
func (m *Manager) List(ctx context.Context) ([]ports.BackupInfo, error) {
	mans, _, err := m.scan()
	if err != nil {
		return nil, err
	}
	out := make([]ports.BackupInfo, 0, len(mans))
	for _, man := range mans {
		out = append(out, man.info())
	}
	return out, nil
}

// scan reads the cluster's backup folders: complete ones (newest first)
// and incomplete ones (no manifest).
func (m *Manager) scan() ([]*Manifest, []string, error) {
	f, err := m.scanFolders()
	return f.mans, f.incomplete, err
}

// folders are the backup folders named for the cluster.
type folders struct {
	mans       []*Manifest // complete, newest first
	incomplete []string    // no manifest
	// unreadable have a manifest that did not load (an I/O error, a
	// partial write, a newer format).
	unreadable []string
	// all are every folder named for the cluster, whatever it holds.
	all []string
}

func (m *Manager) scanFolders() (folders, error) {
	var f folders
	entries, err := os.ReadDir(m.opts.Dest)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("list backups: %w", err)
	}
	prefix := m.opts.Cluster + "-"
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		f.all = append(f.all, e.Name())
		man, _, err := m.load(e.Name())
		if err != nil {
			if _, serr := os.Stat(filepath.Join(m.opts.Dest, e.Name(), manifestName)); errors.Is(serr, fs.ErrNotExist) {
				f.incomplete = append(f.incomplete, e.Name())
			} else {
				f.unreadable = append(f.unreadable, e.Name())
				m.log.Warn().Err(err).Msg("list backups: skipped")
			}
			continue
		}
		if man.Cluster != m.opts.Cluster {
			continue // another cluster whose name starts like ours
		}
		f.mans = append(f.mans, man)
	}
	slices.SortFunc(f.mans, func(a, b *Manifest) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return f, nil
}

// Prune applies the retention rules and returns the ids it deleted.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropReplaced(ctx)
	m.settleLeftovers(ctx, "", func(string) {})
	return m.prune(ctx, "")
}

// dropReplaced drops the databases that restores by swap replaced (they
// are kept through the downtime, where dropping them would cost time).
// Failures are logged: the next call tries again.
func (m *Manager) dropReplaced(ctx context.Context) {
	c, ok := m.db.(copier)
	if !ok {
		return
	}
	dropped, err := c.dropReplaced(ctx)
	if err != nil {
		m.log.Warn().Err(err).Msg("retention: could not drop a database replaced by a restore")
	}
	for _, d := range dropped {
		m.log.Info().Str("database", d).Msg("retention: database replaced by a restore dropped")
	}
}

// protected are the backups that unfinished runs need (Options.Protect).
func (m *Manager) protected(ctx context.Context) (map[string]bool, error) {
	if m.opts.Protect == nil {
		return map[string]bool{}, nil
	}
	p, err := m.opts.Protect(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot tell which backups unfinished runs need: %w", err)
	}
	return p, nil
}

// staleAfter is when a folder without a manifest (a crash in the middle of
// a backup) is removed, unless its run protects it.
const staleAfter = 24 * time.Hour

func (m *Manager) prune(ctx context.Context, keep string) ([]string, error) {
	mans, incomplete, err := m.scan()
	if err != nil {
		return nil, err
	}
	if m.opts.KeepLast == 0 && m.opts.MaxAge == 0 && len(incomplete) == 0 {
		return nil, nil
	}
	protected, err := m.protected(ctx)
	if err != nil {
		return nil, fmt.Errorf("retention skipped: %w", err)
	}
	now := m.opts.Now()
	var doomed []string
	// A crashed backup may have left its copy; a complete one says.
	mayHoldCopy := map[string]bool{}
	for _, id := range incomplete {
		mayHoldCopy[id] = true
	}
	for _, man := range mans {
		mayHoldCopy[man.ID] = man.liveCopy() != ""
	}
	for i, man := range mans {
		if i == 0 || man.ID == keep || protected[man.ID] {
			continue
		}
		if (m.opts.KeepLast > 0 && i >= m.opts.KeepLast) || (m.opts.MaxAge > 0 && now.Sub(man.Created) > m.opts.MaxAge) {
			doomed = append(doomed, man.ID)
		}
	}
	for _, id := range incomplete {
		if id == keep || protected[id] {
			continue
		}
		if fi, err := os.Stat(filepath.Join(m.opts.Dest, id)); err == nil && now.Sub(fi.ModTime()) > staleAfter {
			doomed = append(doomed, id)
		}
	}
	var deleted []string
	var errs []error
	for _, id := range doomed {
		// Its in-server copy goes first: a folder whose copy could not be
		// dropped stays, so the next run tries again.
		if c, ok := m.db.(copier); ok && mayHoldCopy[id] {
			if err := c.dropCopy(ctx, copyName(m.db.name(), id)); err != nil {
				errs = append(errs, fmt.Errorf("drop the in-server copy of backup %s: %w", id, err))
				continue
			}
		}
		if err := os.RemoveAll(filepath.Join(m.opts.Dest, id)); err != nil {
			errs = append(errs, fmt.Errorf("delete backup %s: %w", id, err))
			continue
		}
		m.log.Info().Str("backup", id).Msg("retention: backup deleted")
		deleted = append(deleted, id)
	}
	return deleted, errors.Join(errs...)
}
