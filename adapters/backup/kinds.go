package backup

import (
	"context"
)

// Backup kinds, and the methods the engine calls around them.
//
//   - Plan says, before downtime or at its start, which kind the next
//     Create will take and why.
//   - Create takes the backup inside the 503 period. KindCopy: the
//     database is copied inside its server (a file copy, no dump) and
//     verified, while the storage is archived; it needs no session on the
//     database (every node stopped), the CREATEDB privilege and nocobot's
//     own store outside that database. KindDump: the database is dumped
//     and read back while it is written. BackupInfo.Kind says which one
//     was taken; a copy that fails falls back to a dump.
//   - Restore puts a backup back: a live copy is swapped in by two renames
//     in one transaction (the replaced database is dropped), else the dump
//     is restored. Storage is swapped in exactly either way.
//   - Export, called after traffic is back, makes a KindCopy backup
//     portable: it dumps the copy into the backup folder, verified like any
//     dump, and then drops the copy unless KeepCopy is set. Retention drops
//     the copies of the backups it deletes.
const (
	KindCopy = "copy"
	KindDump = "dump"
)

// Plan is the kind of backup Create will take now, and why.
type Plan struct {
	Kind   string
	Reason string
	// copy is which copy the server would make, where it can make one
	// (also when sessions on the database are all that prevents it).
	copy copyMethod
}

// Plan says which kind of backup Create would take now, and why.
func (m *Manager) Plan(ctx context.Context) Plan {
	if m.opts.NoCopy {
		return Plan{Kind: KindDump, Reason: "in-server copies are turned off"}
	}
	c, ok := m.db.(copier)
	if !ok {
		return Plan{Kind: KindDump, Reason: "the " + m.db.dialect() + " database cannot be copied inside its server"}
	}
	ok, why, how := c.copyPlan(ctx)
	if !ok {
		return Plan{Kind: KindDump, Reason: "no in-server copy: " + why, copy: how}
	}
	return Plan{Kind: KindCopy, Reason: why, copy: how}
}
