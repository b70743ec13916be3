package app

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// Records is nocobot built to read its records (runs, the audit log):
// the store and a dispatcher over an engine without clusters, so it
// needs no secrets besides the store's own and contacts no cluster.
type Records struct {
	Store      store.Store
	Dispatcher *bot.Dispatcher
}

// NewRecords opens the store and builds the dispatcher that reads it;
// Close closes the store.
func NewRecords(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*Records, error) {
	st, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	eng, err := procedures.New(procedures.Options{Store: st, Log: log})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	d, err := bot.New(bot.Options{Config: cfg, Engine: eng, Log: log, TrustTerminal: cfg.Access.TrustTerminal})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return &Records{Store: st, Dispatcher: d}, nil
}

// Close closes the store.
func (r *Records) Close() error { return r.Store.Close() }
