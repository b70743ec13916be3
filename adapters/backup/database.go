package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// database is the seam between this package and a database engine:
// everything that depends on the dialect goes through it, and the rest of
// the package (parts, manifest, checksums, storage, retention) does not
// know which engine it backs up. PostgreSQL (pg.go) is the implementation
// today; newDatabase picks one from the options. A dump is one stream of
// bytes in whatever format the engine's tool writes; it is stored as the
// part database.dump.
type database interface {
	// dialect is recorded in the manifest ("postgres") and must match on
	// restore.
	dialect() string
	// name is the database's name, recorded in the manifest.
	name() string
	// source says where the database is, for messages: no secrets.
	source() string
	// checkTools fails if a program the engine needs on this host is
	// missing (nil when the tools run in the database container).
	checkTools() error
	// excluded lists the schemas left out (recorded in the manifest).
	excluded() []string
	// serverInfo returns the server's version and the database's size in
	// bytes (an upper bound for the dump's size).
	serverInfo(ctx context.Context) (version string, size int64, err error)
	// dump streams a consistent dump of the whole database to w.
	dump(ctx context.Context, w io.Writer) error
	// check reads a dump from r whole, as a restore would, without
	// touching any database: a truncated or damaged dump fails here.
	check(ctx context.Context, r io.Reader) error
	// restore replaces the database's content by the dump read from r, all
	// or nothing. Excluded schemas are left out of dumps and never
	// touched by restores.
	restore(ctx context.Context, r io.Reader) error
}

// copier is a database that can back itself up by a copy inside its
// server (pgcopy.go). Engines without one are always dumped.
type copier interface {
	// copyPlan says whether a copy is possible now, and why (not); how
	// says which copy the server would make, where it can make one.
	copyPlan(ctx context.Context) (ok bool, why string, how copyMethod)
	// copyTo copies the database into a new one named name, verifies it,
	// and says how the server copied it; clone: as copyMethod.clone.
	// and returns its signature.
	copyTo(ctx context.Context, name string, clone bool) (signature, how string, err error)
	// verifyCopy checks that the copy exists and cannot have changed;
	// opened: nocobot opened it to connections (Export).
	verifyCopy(ctx context.Context, name, signature string, opened bool) error
	// openCopy opens the copy to connections, or closes it.
	openCopy(ctx context.Context, name string, open bool) error
	// replacedName names the database a swap replaces; dropNow: drop it
	// after the swap, dropReplaced would not find it.
	replacedName() (name string, dropNow bool)
	// swapIn makes the copy the database, in a moment, renaming the
	// replaced database to old; an error means nothing was changed.
	swapIn(ctx context.Context, name, old string) error
	// databasesExist says which of names exist on the server.
	databasesExist(ctx context.Context, names ...string) (map[string]bool, error)
	// dropReplaced drops the databases that swaps replaced.
	dropReplaced(ctx context.Context) ([]string, error)
	dropCopy(ctx context.Context, name string) error
	// copies lists the databases named like in-server copies of backups.
	copies(ctx context.Context) ([]string, error)
	// copyAsDatabase is the copy as a database, to dump it.
	copyAsDatabase(name string) database
}

// newDatabase returns the database the options name.
func newDatabase(opts Options, containers Containers) (database, error) {
	if opts.Dialect == "" && opts.DBURL != "" {
		opts.Dialect = urlDialect(opts.DBURL)
	}
	if opts.Dialect == "" && opts.DBContainer != "" && opts.DBURL == "" && opts.DialectFrom != nil {
		if containers == nil || opts.DBName == "" {
			return nil, errors.New("the database container mode needs the Docker adapter and a database name")
		}
		return &dialectDatabase{opts: opts, containers: containers}, nil
	}
	switch opts.Dialect {
	case "", "postgres":
	case "mysql", "mariadb":
		return newMySQL(opts, containers)
	default:
		return nil, fmt.Errorf("database dialect %q is not supported (postgres, mysql, mariadb)", opts.Dialect)
	}
	if err := checkSchemas(opts.ExcludeSchemas); err != nil {
		return nil, err
	}
	switch {
	case opts.DBContainer != "" && opts.DBURL != "":
		return nil, errors.New("set either a database container or a database URL, not both")
	case opts.DBContainer != "":
		if containers == nil {
			return nil, errors.New("the database container mode needs the Docker adapter")
		}
		if opts.DBName == "" {
			return nil, errors.New("no database name")
		}
		return postgresInContainer(containers, opts), nil
	case opts.DBURL != "":
		return postgresFromURL(opts)
	default:
		return nil, errors.New("no database: set a database container or a database URL")
	}
}
