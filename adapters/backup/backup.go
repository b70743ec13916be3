// Package backup takes, verifies, restores and prunes complete backups of a
// NocoBase cluster: the database and the storage folder (a tar of uploads,
// key files and plugins, without logs, tmp and old backups).
//
// The database is backed up in one of two kinds (kinds.go): an in-server
// copy (PostgreSQL's CREATE DATABASE … TEMPLATE, when no session is
// connected), exported to a dump later, or a dump: pg_dump -Fd -j N into a
// folder where the tools run on this host, else one pg_dump -Fc stream.
// Everything that depends on the database engine sits behind the database
// interface (database.go); PostgreSQL is pg.go, pgcopy.go and pgdir.go,
// MySQL and MariaDB are mysql.go, mysql_check.go and mysql_restore.go
// (mysqldump/mariadb-dump, restored into a fresh database and swapped in),
// and dialect.go picks one from the nodes' DB_DIALECT when none is set.
//
// Layout: Dest/<id>/{database.dump or database/…, storage.tar,
// manifest.json}, one folder per backup, id "<cluster>-<UTC time>" so that
// names sort by time. The manifest is written last and only after
// verification: a folder without one is an unfinished or failed backup and
// is never offered for restore.
//
// Nothing is held in memory: streams go from the source to the
// destination file through a SHA-256 hasher and a byte counter and are
// read back while written; folder dumps are hashed and decompressed file
// by file as the dump closes them.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// Containers is what this package needs from the Docker adapter: commands
// in the database container, and tar streams in and out of a node's
// storage folder (which works on stopped containers too).
type Containers interface {
	Exec(ctx context.Context, container string, cmd []string, stdin io.Reader, stdout io.Writer) error
	CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error)
	CopyTo(ctx context.Context, container, dir string, tarStream io.Reader) error
}

var _ ports.Backups = (*Manager)(nil)

// DefaultExcludes are left out of the storage archive: logs and temporary
// files are not data, and NocoBase's own backups would make every backup
// grow with the previous ones.
var DefaultExcludes = []string{"logs", "tmp", "backups"}

// DefaultStoragePath is the storage folder in NocoBase's image.
const DefaultStoragePath = "/app/nocobase/storage"

// Options configures a Manager. The database is reached either through
// Docker exec in its container (DBContainer, the default for compose
// setups: pg_dump then always matches the server) or with this host's
// pg_dump against DBURL (a managed database). The storage folder is read
// either from a node container (StorageContainer) or from a host path.
type Options struct {
	// Cluster names the cluster; it prefixes backup ids and is recorded in
	// each manifest. Letters, digits, '.', '_' and '-'.
	Cluster string
	// Dest is the folder holding one subfolder per backup.
	Dest string

	// Dialect is the database engine: "postgres", "mysql" or "mariadb"
	// (mysql.go). Empty: the scheme of DBURL, else what DialectFrom
	// answers on first use, else postgres.
	Dialect string
	// DialectFrom, for the container mode without a Dialect, returns the
	// nodes' DB_DIALECT (wiring reads it from the first node's
	// configuration).
	DialectFrom func(ctx context.Context) (string, error)
	// DBContainer is the database container for the exec mode.
	DBContainer string
	// DBName and DBUser say which database to dump (exec mode).
	DBName, DBUser string
	// DBPassword is the password value (exec mode; main reads it from the
	// environment). It is handed to the tools through stdin into
	// PGPASSWORD, never on a command line, and never logged. The official
	// postgres image trusts local socket connections, so it is often not
	// needed.
	DBPassword string
	// DBHost and DBPort, if set, make the tools in the container connect
	// over TCP instead of the local socket.
	DBHost string
	DBPort int

	// DBURL is postgres://user:password@host:port/dbname for the local
	// mode; the password is moved out of the URL in the same way.
	DBURL string
	// ExcludeSchemas are schemas of the database that backups leave out
	// and restores never touch: nocobot's own store, when it lives in the
	// NocoBase database, so that a restore never rewinds nocobot itself.
	ExcludeSchemas []string
	// PgBin is the folder of pg_dump, pg_restore and psql for the local
	// mode (default: PATH, or the newest Debian client's folder where
	// PATH has Debian's wrapper: debianClientBin). They must be the
	// server's major version or newer.
	PgBin string
	// MySQLBin is the folder of mariadb-dump and mariadb (or mysqldump
	// and mysql) for the local mode of the mysql and mariadb dialects
	// (default: PATH).
	MySQLBin string

	// StorageContainer is a node container whose storage folder is copied
	// out (it may be stopped) and restored into.
	StorageContainer string
	// StoragePath is the storage folder in that container (default
	// DefaultStoragePath).
	StoragePath string
	// Nodes, used when neither StorageContainer nor StorageHostPath is
	// set, lists the cluster's app nodes: the storage folder is the first
	// node's, looked up on first use (New contacts nothing).
	Nodes NodeLister
	// NBDataDir holds NocoBase's own backup files that List shows too
	// (maintain app-backup's copies, each with its metadata beside it).
	NBDataDir string
	// StorageHostPath is the storage folder on this host, instead.
	StorageHostPath string
	// Excludes are paths relative to the storage folder left out of
	// backups and left alone by restores. nil means DefaultExcludes.
	Excludes []string

	// DumpFormat is FormatFolder (a parallel dump into a folder, where the
	// tools run on this host; the default) or FormatStream (one stream,
	// read back while written).
	DumpFormat string
	// Jobs is how many parallel workers a dump and a restore use where the
	// format allows (default: the CPUs, at most 4).
	Jobs int
	// CompressLevel is the kept dump's compression level, 1 (fast, the
	// default) to 9.
	CompressLevel int
	// Compress says when a folder dump is compressed: CompressAfter (the
	// default: a dump taken by Create is written uncompressed, which on
	// few cores is much faster to write and to check, and Export
	// compresses it once traffic is back; without room for the
	// uncompressed dump it is compressed while written), CompressWhile
	// (always while written) or CompressNever.
	Compress string
	// NoCopy turns in-server copies off: every backup is a dump.
	NoCopy bool
	// CopyWhenSpaceUnknown takes in-server copies even where the database
	// server's free space cannot be seen (serverroom.go); otherwise such a
	// server gets dumps.
	CopyWhenSpaceUnknown bool
	// KeepCopy keeps a KindCopy backup's in-server copy after Export
	// (retention drops it with the backup).
	KeepCopy bool

	// KeepLast keeps the newest N backups of the cluster (0: no limit).
	KeepLast int
	// MaxAge deletes backups older than this (0: no limit). The newest
	// backup is always kept.
	MaxAge time.Duration
	// Protect returns the ids of backups that must not be deleted, such as
	// those of unfinished runs. If it fails, nothing is deleted.
	Protect func(ctx context.Context) (map[string]bool, error)

	// Force allows restoring a backup whose manifest names another cluster
	// or database.
	Force bool

	// Timeout bounds each dump, copy or restore of one part (default 6h).
	Timeout time.Duration
	// RestoreTimeout bounds a whole restore (default 12h). It replaces the
	// caller's deadline, which is a step timeout made for other steps;
	// the caller's cancel still stops a restore.
	RestoreTimeout time.Duration
	// ProgressEvery is how often a running copy reports its size (default 10s).
	ProgressEvery time.Duration
	// Now is the clock (tests).
	Now func() time.Time

	// Extras are further parts of every backup (extras.go), such as the
	// Redis queue's jobs.
	Extras []Extra
}

// Manager implements ports.Backups.
type Manager struct {
	opts       Options
	db         database
	containers Containers
	helper     volumeHelper // nil: storage changes only through the running node
	log        zerolog.Logger
	mu         sync.Mutex // one Create, Restore or Prune at a time

	resolveMu sync.Mutex // guards the lazy choice of opts.StorageContainer

	// rename moves entries of a host storage folder (os.Rename; tests
	// make one fail).
	rename func(from, to string) error
}

var clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// New returns a Manager. containers is needed for the exec and
// storage-container modes; it may be nil otherwise.
func New(opts Options, containers Containers, log zerolog.Logger) (*Manager, error) {
	if !clusterName.MatchString(opts.Cluster) {
		return nil, fmt.Errorf("backup: cluster name %q: use letters, digits, '.', '_' and '-'", opts.Cluster)
	}
	if opts.Dest == "" {
		return nil, errors.New("backup: no destination folder")
	}
	dest, err := filepath.Abs(opts.Dest)
	if err != nil {
		return nil, fmt.Errorf("backup: destination: %w", err)
	}
	opts.Dest = dest
	m := &Manager{containers: containers, helper: helperFor(containers), rename: os.Rename, log: log.With().Str("adapter", "backup").Str("cluster", opts.Cluster).Logger()}
	if m.db, err = newDatabase(opts, containers); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	switch {
	case opts.StorageContainer != "" && opts.StorageHostPath != "":
		return nil, errors.New("backup: set either a storage container or a storage host path, not both")
	case opts.StorageContainer != "":
		if containers == nil {
			return nil, errors.New("backup: the storage container mode needs the Docker adapter")
		}
		if opts.StoragePath == "" {
			opts.StoragePath = DefaultStoragePath
		}
	case opts.StorageHostPath != "":
		if opts.StorageHostPath, err = filepath.Abs(opts.StorageHostPath); err != nil {
			return nil, fmt.Errorf("backup: storage path: %w", err)
		}
	case opts.Nodes != nil:
		if containers == nil {
			return nil, errors.New("backup: the storage container mode needs the Docker adapter")
		}
		if opts.StoragePath == "" {
			opts.StoragePath = DefaultStoragePath
		}
	default:
		return nil, errors.New("backup: no storage folder: set a storage container, a storage host path or the nodes to take it from")
	}
	if opts.Excludes == nil {
		opts.Excludes = DefaultExcludes
	}
	if opts.Excludes, err = cleanExcludes(opts.Excludes); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if opts.KeepLast < 0 || opts.MaxAge < 0 {
		return nil, errors.New("backup: retention limits must not be negative")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 6 * time.Hour
	}
	if opts.DumpFormat != "" && opts.DumpFormat != FormatFolder && opts.DumpFormat != FormatStream {
		return nil, fmt.Errorf("backup: dump format %q: want %s or %s", opts.DumpFormat, FormatFolder, FormatStream)
	}
	if opts.Jobs <= 0 {
		opts.Jobs = min(runtime.NumCPU(), 4)
	}
	if opts.CompressLevel == 0 {
		opts.CompressLevel = 1
	}
	if opts.CompressLevel < 0 || opts.CompressLevel > 9 {
		return nil, errors.New("backup: compression level: want 1 to 9")
	}
	switch opts.Compress {
	case "":
		opts.Compress = CompressAfter
	case CompressAfter, CompressWhile, CompressNever:
	default:
		return nil, fmt.Errorf("backup: compress %q: want %s, %s or %s", opts.Compress, CompressAfter, CompressWhile, CompressNever)
	}
	if opts.RestoreTimeout <= 0 {
		opts.RestoreTimeout = 2 * opts.Timeout
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m.opts = opts
	return m, nil
}

func (m *Manager) storageSource() string {
	if m.opts.StorageContainer != "" {
		if d, ok := m.containers.(interface {
			DescribeStorage(name, path string) string
		}); ok {
			return d.DescribeStorage(m.opts.StorageContainer, m.opts.StoragePath)
		}
		return "container " + m.opts.StorageContainer + ":" + m.opts.StoragePath
	}
	return "host " + m.opts.StorageHostPath
}
