package proctest

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/ports"
)

// backupKinds is which kind of backup the fake takes: a dump unless told
// that the server can copy the database in place.
type backupKinds struct {
	copy bool
	why  string
}

func (k backupKinds) create() string {
	if k.copy {
		return ports.BackupCopy
	}
	return ports.BackupDump
}

// TakeCopies makes the next backups in-server copies (why: the reason
// the plan gives); false makes them dumps again.
func (w *World) TakeCopies(copy bool, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kinds = backupKinds{copy: copy, why: why}
}

// PlanKind implements procedures.Backups. A copy needs every node
// stopped, as the server refuses one while a node's session is open.
func (b backups) PlanKind(ctx context.Context, nodesStopped bool) (kind, reason string) {
	w := b.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.kinds.copy {
		return ports.BackupDump, "no in-server copy: " + cmpOr(w.kinds.why, "the server refuses copies")
	}
	if !nodesStopped {
		for _, n := range w.nodes {
			if n.running {
				return ports.BackupDump, "no in-server copy: " + n.name + " is connected to the database"
			}
		}
	}
	return ports.BackupCopy, w.kinds.why
}

// Export implements procedures.Backups, recorded as the action "export
// <id>": a copy gets its dump; a dump is returned as it is.
func (b backups) Export(ctx context.Context, id string, progress ports.Progress) (ports.BackupInfo, error) {
	w := b.w
	if err := b.act(ctx, "export "+id); err != nil {
		return ports.BackupInfo{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, bk := range w.backups {
		if bk.info.ID == id {
			if w.lb != ports.LBNormal {
				w.violations = append(w.violations, "backup "+id+" exported while traffic is on the maintenance page")
			}
			if w.backups[i].info.Kind == ports.BackupCopy {
				w.backups[i].info.Size += 1 << 20
				progress("export " + id + ": dumped and read back")
			}
			return w.backups[i].info, nil
		}
	}
	return ports.BackupInfo{}, fmt.Errorf("no backup %s", id)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
