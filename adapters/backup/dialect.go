package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"
)

// urlDialect is the dialect a database URL's scheme names ("" if none).
func urlDialect(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	switch u.Scheme {
	case "postgres", "postgresql":
		return "postgres"
	case "mysql", "mariadb":
		return u.Scheme
	}
	return ""
}

// dialectDatabase is the database of a cluster whose dialect the
// configuration leaves to the nodes (their DB_DIALECT): it is asked on
// first use through Options.DialectFrom, since New contacts nothing.
// Until then only name and source answer.
type dialectDatabase struct {
	opts       Options
	containers Containers

	mu sync.Mutex
	db database
}

func (a *dialectDatabase) resolve(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.db != nil {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := a.opts.DialectFrom(c)
	if err != nil {
		return fmt.Errorf("backup: find the database dialect (DB_DIALECT of the nodes): %w", err)
	}
	d = strings.ToLower(strings.TrimSpace(d))
	if d == "" {
		// NocoBase's compose examples always set it; PostgreSQL is
		// what they use.
		d = "postgres"
	}
	if d == "postgresql" {
		d = "postgres"
	}
	opts := a.opts
	opts.Dialect = d
	db, err := newDatabase(opts, a.containers)
	if err != nil {
		return fmt.Errorf("backup: the nodes say DB_DIALECT=%s: %w", d, err)
	}
	a.db = db
	return nil
}

var errUnresolved = errors.New("backup: the database dialect is not known yet")

func (a *dialectDatabase) get() database {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db
}

func (a *dialectDatabase) dialect() string {
	if db := a.get(); db != nil {
		return db.dialect()
	}
	return ""
}

func (a *dialectDatabase) name() string { return a.opts.DBName }

func (a *dialectDatabase) source() string {
	if db := a.get(); db != nil {
		return db.source()
	}
	return "container " + a.opts.DBContainer + " database " + a.opts.DBName
}

func (a *dialectDatabase) checkTools() error {
	if db := a.get(); db != nil {
		return db.checkTools()
	}
	return errUnresolved
}

func (a *dialectDatabase) serverInfo(ctx context.Context) (string, int64, error) {
	if err := a.resolve(ctx); err != nil {
		return "", 0, err
	}
	return a.get().serverInfo(ctx)
}

func (a *dialectDatabase) dump(ctx context.Context, w io.Writer) error {
	if err := a.resolve(ctx); err != nil {
		return err
	}
	return a.get().dump(ctx, w)
}

func (a *dialectDatabase) check(ctx context.Context, r io.Reader) error {
	if err := a.resolve(ctx); err != nil {
		return err
	}
	return a.get().check(ctx, r)
}

func (a *dialectDatabase) restore(ctx context.Context, r io.Reader) error {
	if err := a.resolve(ctx); err != nil {
		return err
	}
	return a.get().restore(ctx, r)
}

func (a *dialectDatabase) checkRestore(ctx context.Context) error {
	if err := a.resolve(ctx); err != nil {
		return err
	}
	if rc, ok := a.get().(restoreChecker); ok {
		return rc.checkRestore(ctx)
	}
	return nil
}
