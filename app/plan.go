package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store/sqlite"
)

// Planner is an engine that can only plan: built without secrets and on
// a throw-away store, so a plan needs no credentials and never writes
// the configured store.
type Planner struct {
	Engine *procedures.Engine
	close  func() error
}

// NewPlanner builds the clusters and an engine for plans. Close removes
// what it made.
func NewPlanner(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*Planner, error) {
	dir, err := os.MkdirTemp("", "nocobot-plan-")
	if err != nil {
		return nil, err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "plan.db"), log)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	closeStore := func() error { return errors.Join(st.Close(), os.RemoveAll(dir)) }
	clusters, closeClusters, err := buildClusters(cfg, st, nil, log, noSecrets)
	if err != nil {
		return nil, errors.Join(err, closeStore())
	}
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: clusters, Log: log})
	if err != nil {
		closeClusters()
		return nil, errors.Join(err, closeStore())
	}
	return &Planner{Engine: eng, close: func() error { closeClusters(); return closeStore() }}, nil
}

// Close releases the planner.
func (p *Planner) Close() error { return p.close() }
