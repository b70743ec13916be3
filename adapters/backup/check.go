package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/nocobot/nocobot/format"
)

// storageChecker is offered by containers that can tell, without
// changing anything, whether the storage folder is reachable (the
// Kubernetes adapter: is it on a volume a helper pod can mount).
type storageChecker interface {
	CheckStorage(ctx context.Context, container, path string) error
}

// Check fails if a backup could not be taken now.
func (m *Manager) Check(ctx context.Context) error {
	if err := m.resolveStorage(ctx); err != nil {
		return err
	}
	var errs []error
	if err := os.MkdirAll(m.opts.Dest, 0o700); err != nil {
		errs = append(errs, fmt.Errorf("backup destination: %w", err))
	} else if f, err := os.CreateTemp(m.opts.Dest, ".nocobot-check-*"); err != nil {
		errs = append(errs, fmt.Errorf("backup destination %s is not writable: %w", m.opts.Dest, err))
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	if err := m.db.checkTools(); err != nil {
		errs = append(errs, fmt.Errorf("backup: %w", err))
	}
	server, dbSize, err := m.db.serverInfo(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("database unreachable: %w", err))
	} else {
		if rc, ok := m.db.(restoreChecker); ok {
			if err := rc.checkRestore(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if v, ok := m.db.(interface {
			checkDumpVersion(ctx context.Context, server string) error
		}); ok {
			if err := v.checkDumpVersion(ctx, server); err != nil {
				errs = append(errs, fmt.Errorf("backup: %w", err))
			}
		}
	}
	if m.opts.StorageHostPath != "" {
		if fi, err := os.Stat(m.opts.StorageHostPath); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("storage folder %s: not a readable folder", m.opts.StorageHostPath))
		}
	}
	if sc, ok := m.containers.(storageChecker); ok && m.opts.StorageContainer != "" {
		if err := sc.CheckStorage(ctx, m.opts.StorageContainer, m.opts.StoragePath); err != nil {
			errs = append(errs, fmt.Errorf("backup: %w", err))
		}
	}
	if len(errs) == 0 {
		if need, free, ok := m.room(ctx, dbSize); ok && free < need {
			errs = append(errs, fmt.Errorf("backup destination %s has %s free, a backup needs about %s",
				m.opts.Dest, format.Bytes(free), format.Bytes(need)))
		}
	}
	return errors.Join(errs...)
}

// room estimates a backup's size and returns the destination's free space
// (ok is false if the file system cannot tell). A compressed dump is
// smaller than the database on disk; the previous backup is the best guess
// of the storage's share.
func (m *Manager) room(ctx context.Context, dbSize int64) (need, free int64, ok bool) {
	need = dbSize
	if list, err := m.List(ctx); err == nil && len(list) > 0 {
		need = max(need, list[0].Size+list[0].Size/5)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(m.opts.Dest, &st); err != nil {
		return need, 0, false
	}
	return need, int64(st.Bavail) * int64(st.Bsize), true
}

// errNoSpace: the destination's file system is full.
var errNoSpace = errors.New("no space left on the destination")

// fileWriter remembers the first write error of a part file: a full disk
// must be reported as such, not as the broken pipe it causes in the tool
// that writes into it.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// noSpace turns a write, sync or close error that means "disk full" into
// errNoSpace.
func noSpace(errs ...error) error {
	for _, err := range errs {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return errNoSpace
		}
	}
	return nil
}
