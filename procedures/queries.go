package procedures

import (
	"context"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// The fronts' read and record door: what they show (runs, decisions,
// backups, windows, the audit log) and the notes they keep. Fronts reach
// the store and the adapters through these methods only.

// queryTimeout bounds a front's question to the store or an adapter.
const queryTimeout = 20 * time.Second

// RunByID returns one run; store.ErrNotFound when there is none.
func (e *Engine) RunByID(ctx context.Context, id string) (store.Run, error) {
	return e.store.GetRun(ctx, id)
}

// Runs lists runs newest first; cluster "" means all, limit 0 all.
func (e *Engine) Runs(ctx context.Context, cluster string, limit int) ([]store.Run, error) {
	return e.store.ListRuns(ctx, cluster, limit)
}

// UnfinishedRuns lists the runs not finished yet, on any cluster.
func (e *Engine) UnfinishedRuns(ctx context.Context) ([]store.Run, error) {
	return e.store.UnfinishedRuns(ctx)
}

// Decisions lists a run's decisions, oldest first.
func (e *Engine) Decisions(ctx context.Context, runID string) ([]store.Decision, error) {
	return e.store.Decisions(ctx, runID)
}

// Backups lists a cluster's backups, newest first.
func (e *Engine) Backups(ctx context.Context, cluster string) ([]ports.BackupInfo, error) {
	c, err := e.cluster(cluster)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	return c.Backups.List(ctx)
}

// Window returns one maintenance window; store.ErrNotFound when there is none.
func (e *Engine) Window(ctx context.Context, id string) (store.Window, error) {
	return e.store.GetWindow(ctx, id)
}

// Windows lists every maintenance window.
func (e *Engine) Windows(ctx context.Context) ([]store.Window, error) {
	return e.store.ListWindows(ctx)
}

// AppendAudit records a command, click, decision or refusal.
func (e *Engine) AppendAudit(ctx context.Context, a store.AuditEntry) error {
	return e.store.AppendAudit(ctx, a)
}

// Audit reads the audit log, newest first.
func (e *Engine) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	return e.store.Audit(ctx, q)
}

// PutNote keeps a front's small value (scope such as "slack", key a run id).
func (e *Engine) PutNote(ctx context.Context, scope, key, value string) error {
	return e.store.PutNote(ctx, scope, key, value)
}

// GetNote reads a front's note; store.ErrNotFound when there is none.
func (e *Engine) GetNote(ctx context.Context, scope, key string) (string, error) {
	return e.store.GetNote(ctx, scope, key)
}

func joinNames(names []string) string { return strings.Join(names, ", ") }
