package backup

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/nocobot/nocobot/ports"
)

// compactLeftovers compresses the dumps that earlier runs left
// uncompressed: a run rolled back or aborted before its Export step keeps
// its dump as written inside the downtime, which restores as it is but
// takes about the database's size on disk. It runs in Export, once
// traffic is back, skipping keep (the backup just exported) and the
// backups of unfinished runs. A failure is housekeeping: logged and
// reported, the next Export tries again.
func (m *Manager) compactLeftovers(ctx context.Context, keep string, progress ports.Progress) {
	if m.opts.Compress == CompressNever {
		return
	}
	mans, _, err := m.scan()
	if err != nil {
		m.log.Warn().Err(err).Msg("export: could not look for dumps left uncompressed")
		return
	}
	protected, err := m.protected(ctx)
	if err != nil {
		m.log.Warn().Err(err).Msg("export: dumps left uncompressed are kept so")
		return
	}
	for _, man := range mans {
		if man.ID == keep || protected[man.ID] || len(man.plainTableData()) == 0 {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		progress(fmt.Sprintf("backup %s was left uncompressed by an earlier run: compressing it now", man.ID))
		if err := m.compact(ctx, filepath.Join(m.opts.Dest, man.ID), man, progress); err != nil {
			m.log.Warn().Err(err).Str("backup", man.ID).Msg("export: could not compress a dump left uncompressed")
			progress(fmt.Sprintf("backup %s stays uncompressed for now (it restores as it is): %v", man.ID, err))
		}
	}
}

// settleLeftovers finishes what killed or crashed runs left in the
// database server, once traffic is back (Export, Prune):
//   - copies without a backup folder: a CREATE DATABASE that outlived a
//     killed or cancelled nocobot commits after its folder was removed;
//   - copy backups no unfinished run needs that were never exported (a
//     run that crashed before recording its backup takes another one
//     when it resumes): they are exported like any copy backup.
//
// Failures are housekeeping: logged and reported, the next run tries
// again.
func (m *Manager) settleLeftovers(ctx context.Context, keep string, progress ports.Progress) {
	if _, ok := m.db.(copier); !ok {
		return
	}
	f, err := m.scanFolders()
	if err != nil {
		m.log.Warn().Err(err).Msg("leftovers: could not list the backups")
		return
	}
	m.dropOrphanCopies(ctx, f, progress)
	mans := f.mans
	protected, err := m.protected(ctx)
	if err != nil {
		m.log.Warn().Err(err).Msg("leftovers: copy backups left unexported are kept so")
		return
	}
	for _, man := range mans {
		if man.ID == keep || protected[man.ID] || man.liveCopy() == "" || man.hasDatabaseDump() || ctx.Err() != nil {
			continue
		}
		progress(fmt.Sprintf("backup %s is an in-server copy that no run exported (its run stopped before recording it): exporting it now", man.ID))
		if _, err := m.export(ctx, man.ID, progress); err != nil {
			m.log.Warn().Err(err).Str("backup", man.ID).Msg("leftovers: could not export a copy backup")
			progress(fmt.Sprintf("backup %s stays an in-server copy for now: %v", man.ID, err))
		}
	}
}

// dropOrphanCopies drops the in-server copies that belong to no backup
// folder. A copy is created after its folder and dropped before it is
// removed, so a copy without a folder was made by a CREATE DATABASE that
// its nocobot no longer waited for. Every folder named for the cluster
// owns its copy, whatever its manifest says; while a manifest does not
// load, nothing is dropped: the copy may be the only one of a database.
func (m *Manager) dropOrphanCopies(ctx context.Context, f folders, progress ports.Progress) {
	if len(f.unreadable) > 0 {
		m.log.Warn().Strs("backups", f.unreadable).Msg("leftovers: in-server copies without a backup are not dropped while a backup's manifest cannot be read; fix or remove it")
		return
	}
	c := m.db.(copier)
	names, err := c.copies(ctx)
	if err != nil {
		m.log.Warn().Err(err).Msg("leftovers: could not list the in-server copies")
		return
	}
	owned := map[string]bool{}
	for _, id := range f.all {
		owned[copyName(m.db.name(), id)] = true
	}
	for _, name := range names {
		if owned[name] || ctx.Err() != nil {
			continue
		}
		if err := c.dropCopy(ctx, name); err != nil {
			m.log.Warn().Err(err).Str("copy", name).Msg("leftovers: could not drop an in-server copy without a backup")
			continue
		}
		m.log.Info().Str("copy", name).Msg("leftovers: in-server copy without a backup dropped")
		progress("dropped in-server copy " + name + ": no backup holds it (a run was stopped while it was being made)")
	}
}
