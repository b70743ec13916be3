package backup

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/nocobot/nocobot/procedures"
)

// compactLeftovers compresses the dumps that earlier runs left
// uncompressed: a run rolled back or aborted before its Export step keeps
// its dump as written inside the downtime, which restores as it is but
// takes about the database's size on disk. It runs in Export, once
// traffic is back, skipping keep (the backup just exported) and the
// backups of unfinished runs. A failure is housekeeping: logged and
// reported, the next Export tries again.
func (m *Manager) compactLeftovers(ctx context.Context, keep string, progress procedures.Progress) {
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
