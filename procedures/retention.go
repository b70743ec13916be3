package procedures

import (
	"context"

	"github.com/nocobot/nocobot/store"
)

// UnfinishedRunLister is the part of the store the retention rule reads.
type UnfinishedRunLister interface {
	UnfinishedRuns(ctx context.Context) ([]store.Run, error)
}

// BackupsInUse are the backups that unfinished runs may still restore:
// retention keeps them whatever their age.
func BackupsInUse(ctx context.Context, runs UnfinishedRunLister) (map[string]bool, error) {
	rs, err := runs.UnfinishedRuns(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, r := range rs {
		if id := r.Fact("backup"); id != "" {
			keep[id] = true
		}
	}
	return keep, nil
}
