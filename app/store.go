package app

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/postgres"
	"github.com/nocobot/nocobot/store/sqlite"
)

// storeTimeout bounds connecting to PostgreSQL.
const storeTimeout = 30 * time.Second

// OpenStore opens the store the configuration names: the embedded file,
// or PostgreSQL with the password from its environment variable.
func OpenStore(ctx context.Context, cfg *config.Config, log zerolog.Logger) (store.Store, error) {
	if cfg.Store.URL == "" {
		return sqlite.Open(ctx, cfg.Store.Path, log)
	}
	pw, err := config.Secret("store.password_env", cfg.Store.PasswordEnv)
	if err != nil {
		return nil, err
	}
	c, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return postgres.Open(c, cfg.Store.URL, cfg.Store.Schema, log, postgres.WithPassword(pw))
}
