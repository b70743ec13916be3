package backup

import (
	"context"
	"strings"
)

// PlanKind implements ports.Backups: Plan as the engine reads it.
// Asked for the time when every node is stopped, sessions on the
// database no longer count against a copy: they are the nodes'.
func (m *Manager) PlanKind(ctx context.Context, nodesStopped bool) (kind, reason string) {
	p := m.Plan(ctx)
	if nodesStopped && p.Kind == KindDump && strings.HasSuffix(p.Reason, whySessions) {
		return KindCopy, "the server can copy the database in place once the nodes are stopped: " + p.copy.why
	}
	if _, toDir := m.dumpsToDir(m.db); p.Kind == KindDump && toDir {
		switch m.opts.Compress {
		case CompressAfter:
			p.Reason += "; written uncompressed where there is room, the fastest to write and check, and compressed once traffic is back"
		case CompressNever:
			p.Reason += "; kept uncompressed"
		}
	}
	return p.Kind, p.Reason
}
