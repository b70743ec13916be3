package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/ports"
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
	clusters, closeClusters, err := buildClusters(cfg, st, nil, log, planSecrets(cfg))
	if err != nil {
		return nil, errors.Join(err, closeStore())
	}
	for i, c := range clusters {
		if cfg.Clusters[i].Backup.Database.URLEnv != "" {
			c.Backups = unreadURL{c.Backups}
		}
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

// planSecrets reads no secret. A database URL is one too (it may hold a
// password): a cluster given one gets a stand-in of its dialect, which a
// plan never connects to (see unreadURL).
func planSecrets(cfg *config.Config) secretFunc {
	return func(field, env string) (string, error) {
		for _, cc := range cfg.Clusters {
			if env == "" || field != "clusters ("+cc.Name+").backup.database.url_env" {
				continue
			}
			scheme := "postgres"
			if d := cc.Backup.Database.Dialect; d == "mysql" || d == "mariadb" {
				scheme = d
			}
			return scheme + "://nocobot-plan@nocobot-plan.invalid/nocobase", nil
		}
		return "", nil
	}
}

// unreadURL is the backups of a cluster whose database URL a plan does
// not read: which kind of backup a run takes is decided when it runs.
type unreadURL struct{ ports.Backups }

func (unreadURL) PlanKind(context.Context, bool) (kind, reason string) {
	return "decided when the run starts", "a plan does not read the database URL: backup.database.url_env is a secret"
}
