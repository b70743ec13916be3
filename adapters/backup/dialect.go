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

func (a *dialectDatabase) excluded() []string {
	if db := a.get(); db != nil {
		return db.excluded()
	}
	return nil
}

// The wrapper passes the optional abilities (in-server copy, folder dump)
// of the database it resolved to; engines without them answer "not
// possible". Methods without a context answer for the resolved database:
// every Manager method resolves it first.

func (a *dialectDatabase) copier(ctx context.Context) (copier, error) {
	if err := a.resolve(ctx); err != nil {
		return nil, err
	}
	c, ok := a.get().(copier)
	if !ok {
		return nil, errors.New("the " + a.get().dialect() + " database cannot be copied inside its server")
	}
	return c, nil
}

func (a *dialectDatabase) copyPlan(ctx context.Context) (bool, string, copyMethod) {
	c, err := a.copier(ctx)
	if err != nil {
		return false, err.Error(), copyMethod{}
	}
	return c.copyPlan(ctx)
}

func (a *dialectDatabase) copyTo(ctx context.Context, name string, clone bool) (string, string, error) {
	c, err := a.copier(ctx)
	if err != nil {
		return "", "", err
	}
	return c.copyTo(ctx, name, clone)
}

func (a *dialectDatabase) verifyCopy(ctx context.Context, name, signature string, opened bool) error {
	c, err := a.copier(ctx)
	if err != nil {
		return err
	}
	return c.verifyCopy(ctx, name, signature, opened)
}

func (a *dialectDatabase) openCopy(ctx context.Context, name string, open bool) error {
	c, err := a.copier(ctx)
	if err != nil {
		return err
	}
	return c.openCopy(ctx, name, open)
}

func (a *dialectDatabase) swapIn(ctx context.Context, name, old string) error {
	c, err := a.copier(ctx)
	if err != nil {
		return err
	}
	return c.swapIn(ctx, name, old)
}

func (a *dialectDatabase) replacedName() (string, bool) {
	if c, ok := a.get().(copier); ok {
		return c.replacedName()
	}
	return "", false
}

func (a *dialectDatabase) databasesExist(ctx context.Context, names ...string) (map[string]bool, error) {
	c, err := a.copier(ctx)
	if err != nil {
		return nil, err
	}
	return c.databasesExist(ctx, names...)
}

func (a *dialectDatabase) dropCopy(ctx context.Context, name string) error {
	c, err := a.copier(ctx)
	if err != nil {
		return err
	}
	return c.dropCopy(ctx, name)
}

func (a *dialectDatabase) copies(ctx context.Context) ([]string, error) {
	c, err := a.copier(ctx)
	if err != nil {
		return nil, err
	}
	return c.copies(ctx)
}

func (a *dialectDatabase) dropReplaced(ctx context.Context) ([]string, error) {
	c, err := a.copier(ctx)
	if err != nil {
		return nil, err
	}
	return c.dropReplaced(ctx)
}

func (a *dialectDatabase) checkDumpVersion(ctx context.Context, server string) error {
	if err := a.resolve(ctx); err != nil {
		return err
	}
	if v, ok := a.get().(interface {
		checkDumpVersion(ctx context.Context, server string) error
	}); ok {
		return v.checkDumpVersion(ctx, server)
	}
	return nil
}

// The wrapper has every ability a database may have, so a Manager asks it
// as it would the database itself.
var (
	_ copier    = (*dialectDatabase)(nil)
	_ dirDumper = (*dialectDatabase)(nil)
)

func (a *dialectDatabase) copyAsDatabase(name string) database {
	if c, ok := a.get().(copier); ok {
		return c.copyAsDatabase(name)
	}
	return nil
}

func (a *dialectDatabase) canDumpDir() bool {
	d, ok := a.get().(dirDumper)
	return ok && d.canDumpDir()
}

func (a *dialectDatabase) dirDumper(ctx context.Context) (dirDumper, error) {
	if err := a.resolve(ctx); err != nil {
		return nil, err
	}
	d, ok := a.get().(dirDumper)
	if !ok {
		return nil, errors.New("the " + a.get().dialect() + " database cannot dump into a folder")
	}
	return d, nil
}

func (a *dialectDatabase) dumpDir(ctx context.Context, dir string, jobs, level int) error {
	d, err := a.dirDumper(ctx)
	if err != nil {
		return err
	}
	return d.dumpDir(ctx, dir, jobs, level)
}

func (a *dialectDatabase) checkDir(ctx context.Context, dir string) (string, error) {
	d, err := a.dirDumper(ctx)
	if err != nil {
		return "", err
	}
	return d.checkDir(ctx, dir)
}

func (a *dialectDatabase) restoreDirFresh(ctx context.Context, dir string, jobs int) (string, error) {
	d, err := a.dirDumper(ctx)
	if err != nil {
		return "", err
	}
	return d.restoreDirFresh(ctx, dir, jobs)
}
