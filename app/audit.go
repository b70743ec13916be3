package app

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// auditPruner is the part of the store pruneAudit needs.
type auditPruner interface {
	PruneAudit(ctx context.Context, before time.Time) (int, error)
}

// pruneEvery is how often the audit log is cut to its retention.
const pruneEvery = 24 * time.Hour

// pruneAudit keeps the audit log within its retention: at once, then
// once a day, until ctx ends.
func pruneAudit(ctx context.Context, st auditPruner, retention time.Duration, log zerolog.Logger) {
	for {
		c, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := st.PruneAudit(c, time.Now().Add(-retention))
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("could not prune the audit log")
		} else if n > 0 {
			log.Info().Int("entries", n).Msg("pruned the audit log")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pruneEvery):
		}
	}
}
