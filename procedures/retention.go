package procedures

import (
	"context"

	"github.com/nocobot/nocobot/store"
)

// UnfinishedRuns lists the runs that have not ended (a store does).
type UnfinishedRuns interface {
	UnfinishedRuns(ctx context.Context) ([]store.Run, error)
}

// BackupsInUse are the backups that unfinished runs may still restore:
// the safety backup each took and the backups their actions restore.
// Backup retention must keep them.
func BackupsInUse(ctx context.Context, runs UnfinishedRuns) (map[string]bool, error) {
	rs, err := runs.UnfinishedRuns(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, r := range rs {
		if id := FactsOf(r).BackupID(); id != "" {
			keep[id] = true
		}
		for _, a := range actionsOf(r.Params) {
			if a.Kind == "restore" {
				keep[a.Arg] = true
			}
		}
	}
	return keep, nil
}
