// Package backup takes, verifies, restores and prunes complete backups of a
// NocoBase cluster: the PostgreSQL database (pg_dump -Fc) and the storage
// folder (a tar of uploads, key files and plugins, without logs, tmp and
// old backups).
//
// Layout: Dest/<id>/{database.dump, storage.tar, manifest.json}, one folder
// per backup, id "<cluster>-<UTC time>" so that names sort by time. The
// manifest is written last and only after verification: a folder without
// one is an unfinished or failed backup and is never offered for restore.
//
// Everything is streamed: the dump and the archive go from the source to
// the destination file through a SHA-256 hasher and a byte counter, and
// the dump is read back by pg_restore while it is written; no part is
// ever held in memory.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/procedures"
)

// Containers is what this package needs from the Docker adapter: commands
// in the database container, and tar streams in and out of a node's
// storage folder (which works on stopped containers too).
type Containers interface {
	Exec(ctx context.Context, container string, cmd []string, stdin io.Reader, stdout io.Writer) error
	CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error)
	CopyTo(ctx context.Context, container, dir string, tarStream io.Reader) error
}

var _ procedures.Backups = (*Manager)(nil)

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
	// PgBin is the folder of pg_dump, pg_restore and psql for the local
	// mode (default: PATH). They must be the server's major version or
	// newer.
	PgBin string

	// StorageContainer is a node container whose storage folder is copied
	// out (it may be stopped) and restored into.
	StorageContainer string
	// StoragePath is the storage folder in that container (default
	// DefaultStoragePath).
	StoragePath string
	// StorageHostPath is the storage folder on this host, instead.
	StorageHostPath string
	// Excludes are paths relative to the storage folder left out of
	// backups and left alone by restores. nil means DefaultExcludes.
	Excludes []string

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
	// ProgressEvery is how often a running copy reports its size (default 10s).
	ProgressEvery time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Manager implements procedures.Backups.
type Manager struct {
	opts       Options
	db         *database
	containers Containers
	log        zerolog.Logger
	mu         sync.Mutex // one Create, Restore or Prune at a time
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
	m := &Manager{containers: containers, log: log.With().Str("adapter", "backup").Str("cluster", opts.Cluster).Logger()}
	switch {
	case opts.DBContainer != "" && opts.DBURL != "":
		return nil, errors.New("backup: set either a database container or a database URL, not both")
	case opts.DBContainer != "":
		if containers == nil {
			return nil, errors.New("backup: the database container mode needs the Docker adapter")
		}
		if opts.DBName == "" {
			return nil, errors.New("backup: no database name")
		}
		m.db = databaseInContainer(containers, opts.DBContainer, opts.DBName, opts.DBUser, opts.DBPassword, opts.DBHost, opts.DBPort)
	case opts.DBURL != "":
		if m.db, err = databaseFromURL(opts.DBURL, opts.PgBin); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	default:
		return nil, errors.New("backup: no database: set a database container or a database URL")
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
	default:
		return nil, errors.New("backup: no storage folder: set a storage container or a storage host path")
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
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m.opts = opts
	return m, nil
}

// Part names in a backup folder.
const (
	partDatabase = "database.dump"
	partStorage  = "storage.tar"
	manifestName = "manifest.json"
)

// Manifest describes one backup; it is written as manifest.json beside the
// parts.
type Manifest struct {
	Format          int       `json:"format"`
	ID              string    `json:"id"`
	Cluster         string    `json:"cluster"`
	RunID           string    `json:"run_id,omitempty"`
	NocoBaseVersion string    `json:"nocobase_version,omitempty"`
	Image           string    `json:"image,omitempty"`
	Created         time.Time `json:"created"`
	// Seconds is how long the backup took.
	Seconds  float64      `json:"seconds"`
	Database DatabaseInfo `json:"database"`
	Storage  StorageInfo  `json:"storage"`
	Parts    []Part       `json:"parts"`
	Verified bool         `json:"verified"`
}

// DatabaseInfo says where the dump comes from.
type DatabaseInfo struct {
	Dialect       string `json:"dialect"`
	Name          string `json:"name"`
	ServerVersion string `json:"server_version"`
	Source        string `json:"source"` // container or host/db, no secrets
}

// StorageInfo says where the storage archive comes from.
type StorageInfo struct {
	Source   string   `json:"source"`
	Excludes []string `json:"excludes"`
	Files    int64    `json:"files"`
}

// Part is one file of a backup.
type Part struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Size is the sum of the parts' sizes.
func (m *Manifest) Size() int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.Size
	}
	return n
}

func (m *Manifest) info() procedures.BackupInfo {
	return procedures.BackupInfo{
		ID: m.ID, Cluster: m.Cluster, Version: m.NocoBaseVersion, Image: m.Image,
		Created: m.Created, Size: m.Size(), Verified: m.Verified, RunID: m.RunID,
	}
}

func (m *Manager) storageSource() string {
	if m.opts.StorageContainer != "" {
		return "container " + m.opts.StorageContainer + ":" + m.opts.StoragePath
	}
	return "host " + m.opts.StorageHostPath
}

// Check fails if a backup could not be taken now.
func (m *Manager) Check(ctx context.Context) error {
	var errs []error
	if err := os.MkdirAll(m.opts.Dest, 0o700); err != nil {
		errs = append(errs, fmt.Errorf("backup destination: %w", err))
	} else if f, err := os.CreateTemp(m.opts.Dest, ".nocobot-check-*"); err != nil {
		errs = append(errs, fmt.Errorf("backup destination %s is not writable: %w", m.opts.Dest, err))
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	if m.opts.DBURL != "" {
		for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
			if _, err := binPath(m.opts.PgBin, tool); err != nil {
				errs = append(errs, fmt.Errorf("backup: %w", err))
			}
		}
	}
	_, dbSize, err := m.db.serverInfo(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("database unreachable: %w", err))
	}
	if m.opts.StorageHostPath != "" {
		if fi, err := os.Stat(m.opts.StorageHostPath); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("storage folder %s: not a readable folder", m.opts.StorageHostPath))
		}
	}
	if len(errs) == 0 {
		// A compressed dump is smaller than the database on disk; the
		// previous backup is the best guess of the storage's share.
		need := dbSize
		if list, err := m.List(ctx); err == nil && len(list) > 0 {
			need = max(need, list[0].Size+list[0].Size/5)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(m.opts.Dest, &st); err == nil {
			free := int64(st.Bavail) * int64(st.Bsize)
			if free < need {
				errs = append(errs, fmt.Errorf("backup destination %s has %s free, a backup needs about %s",
					m.opts.Dest, humanBytes(free), humanBytes(need)))
			}
		}
	}
	return errors.Join(errs...)
}

// newID returns an unused id for a backup taken now.
func (m *Manager) newID() (string, string, error) {
	base := m.opts.Cluster + "-" + m.opts.Now().UTC().Format("20060102T150405Z")
	for i := 0; i < 100; i++ {
		id := base
		if i > 0 {
			id = fmt.Sprintf("%s-%d", base, i+1)
		}
		dir := filepath.Join(m.opts.Dest, id)
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			return id, dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", "", fmt.Errorf("create backup folder: %w", err)
		}
	}
	return "", "", errors.New("create backup folder: too many backups in one second")
}

// Create takes a backup of the database and the storage folder, verifies
// it and writes its manifest; then it applies the retention rules. An
// error means no usable backup exists (the partial folder is removed).
func (m *Manager) Create(ctx context.Context, req procedures.BackupRequest, progress procedures.Progress) (procedures.BackupInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if progress == nil {
		progress = func(string) {}
	}
	if req.Cluster != "" && req.Cluster != m.opts.Cluster {
		return procedures.BackupInfo{}, fmt.Errorf("backup: asked for cluster %q, configured for %q", req.Cluster, m.opts.Cluster)
	}
	start := m.opts.Now()
	if err := os.MkdirAll(m.opts.Dest, 0o700); err != nil {
		return procedures.BackupInfo{}, fmt.Errorf("backup destination: %w", err)
	}
	serverVersion, _, err := m.db.serverInfo(ctx)
	if err != nil {
		return procedures.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	id, dir, err := m.newID()
	if err != nil {
		return procedures.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	log := m.log.With().Str("backup", id).Logger()
	log.Info().Str("database", m.db.source).Str("storage", m.storageSource()).Msg("backup started")
	progress(fmt.Sprintf("backup %s: database %s (PostgreSQL %s) and storage (%s)", id, m.db.name, serverVersion, m.storageSource()))

	man := &Manifest{
		Format: 1, ID: id, Cluster: m.opts.Cluster, RunID: req.RunID,
		NocoBaseVersion: req.Version, Image: req.Image, Created: start.UTC(),
		Database: DatabaseInfo{Dialect: "postgres", Name: m.db.name, ServerVersion: serverVersion, Source: m.db.source},
		Storage:  StorageInfo{Source: m.storageSource(), Excludes: m.opts.Excludes},
	}
	// The two parts come from different places (database server, storage
	// volume): taking them together shortens the downtime.
	var (
		wg             sync.WaitGroup
		dbPart, stPart Part
		dbErr, stErr   error
		files          int64
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		dbPart, dbErr = m.backupDatabase(ctx, dir, progress)
	}()
	go func() {
		defer wg.Done()
		stPart, files, stErr = m.backupStorage(ctx, dir, progress)
	}()
	wg.Wait()
	if err := errors.Join(dbErr, stErr); err != nil {
		os.RemoveAll(dir)
		log.Error().Err(err).Msg("backup failed")
		return procedures.BackupInfo{}, fmt.Errorf("backup %s failed (removed): %w", id, err)
	}
	man.Parts = []Part{dbPart, stPart}
	man.Storage.Files = files
	if dbPart.Size == 0 || stPart.Size == 0 {
		os.RemoveAll(dir)
		return procedures.BackupInfo{}, fmt.Errorf("backup %s failed (removed): empty part", id)
	}
	man.Verified = true
	man.Seconds = m.opts.Now().Sub(start).Seconds()
	if err := writeManifest(dir, man); err != nil {
		os.RemoveAll(dir)
		return procedures.BackupInfo{}, fmt.Errorf("backup %s failed (removed): %w", id, err)
	}
	log.Info().Int64("size", man.Size()).Float64("seconds", man.Seconds).Msg("backup verified")
	progress(fmt.Sprintf("backup %s verified: %s in %s (database %s, storage %s, %d files)", id,
		humanBytes(man.Size()), time.Duration(man.Seconds*float64(time.Second)).Round(100*time.Millisecond),
		humanBytes(dbPart.Size), humanBytes(stPart.Size), files))

	if deleted, err := m.prune(ctx, id); err != nil {
		// Retention is housekeeping: the backup itself is good.
		log.Warn().Err(err).Msg("retention")
		progress("retention: " + err.Error())
	} else if len(deleted) > 0 {
		progress("retention: deleted " + strings.Join(deleted, ", "))
	}
	return man.info(), nil
}

// createPart writes one part through a hasher and a counter, reporting the
// size now and then, and syncs it to disk.
func (m *Manager) createPart(ctx context.Context, dir, name, label string, progress procedures.Progress,
	write func(ctx context.Context, w io.Writer) error) (Part, error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Part{}, err
	}
	defer f.Close()
	h := sha256.New()
	var n countingWriter
	stop := m.reportSize(label, &n, progress)
	err = write(ctx, io.MultiWriter(f, h, &n))
	stop()
	if err != nil {
		return Part{}, err
	}
	if err := f.Sync(); err != nil {
		return Part{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return Part{}, fmt.Errorf("%s: %w", name, err)
	}
	return Part{Name: name, Size: n.n.Load(), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// reportSize sends "<label>: 1.2 GB so far (45 MB/s)" every ProgressEvery.
func (m *Manager) reportSize(label string, n *countingWriter, progress procedures.Progress) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(m.opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				b := n.n.Load()
				progress(fmt.Sprintf("%s: %s so far (%s/s)", label, humanBytes(b), humanBytes(int64(float64(b)/time.Since(start).Seconds()))))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// backupDatabase streams pg_dump into the part file and, at the same time,
// into pg_restore, which reads the dump back whole: verification costs no
// extra pass over the data.
func (m *Manager) backupDatabase(ctx context.Context, dir string, progress procedures.Progress) (Part, error) {
	progress("database: pg_dump " + m.db.name)
	var checkErr error
	part, err := m.createPart(ctx, dir, partDatabase, "database", progress, func(ctx context.Context, w io.Writer) error {
		pr, pw := io.Pipe()
		checked := make(chan struct{})
		go func() {
			defer close(checked)
			checkErr = m.db.check(ctx, pr)
			// If the check stopped early, the dump must not block on it.
			pr.CloseWithError(errors.New("the dump check stopped reading"))
		}()
		err := m.db.dump(ctx, io.MultiWriter(w, pw))
		pw.CloseWithError(err)
		<-checked
		if err != nil {
			return err
		}
		return checkErr
	})
	if err != nil {
		return Part{}, fmt.Errorf("database: %w", err)
	}
	progress(fmt.Sprintf("database: %s dumped and read back whole", humanBytes(part.Size)))
	return part, nil
}

func (m *Manager) backupStorage(ctx context.Context, dir string, progress procedures.Progress) (Part, int64, error) {
	progress("storage: archiving " + m.storageSource())
	var st storageStats
	part, err := m.createPart(ctx, dir, partStorage, "storage", progress, func(ctx context.Context, w io.Writer) error {
		var err error
		if m.opts.StorageHostPath != "" {
			st, err = tarHostFolder(ctx, m.opts.StorageHostPath, m.opts.Excludes, w, func(rel string) {
				m.log.Warn().Str("path", rel).Msg("storage: skipped a special file")
			})
			return err
		}
		rc, err := m.containers.CopyFrom(ctx, m.opts.StorageContainer, m.opts.StoragePath)
		if err != nil {
			return err
		}
		defer rc.Close()
		st, err = retar(ctx, rc, m.opts.Excludes, w)
		return err
	})
	if err != nil {
		return Part{}, 0, fmt.Errorf("storage: %w", err)
	}
	progress(fmt.Sprintf("storage: %s, %d files", humanBytes(part.Size), st.files))
	return part, st.files, nil
}

func writeManifest(dir string, man *Manifest) error {
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, manifestName)); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// load reads a backup's manifest.
func (m *Manager) load(id string) (*Manifest, string, error) {
	if !idPattern.MatchString(id) {
		return nil, "", fmt.Errorf("backup id %q is not valid", id)
	}
	dir := filepath.Join(m.opts.Dest, id)
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dir); derr == nil {
			return nil, "", fmt.Errorf("backup %s is incomplete (no manifest): it failed or is still being taken", id)
		}
		return nil, "", fmt.Errorf("backup %s not found in %s", id, m.opts.Dest)
	}
	if err != nil {
		return nil, "", fmt.Errorf("backup %s: %w", id, err)
	}
	var man Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, "", fmt.Errorf("backup %s: damaged manifest: %w", id, err)
	}
	if man.ID != id || man.Format != 1 {
		return nil, "", fmt.Errorf("backup %s: the manifest does not belong to this folder", id)
	}
	return &man, dir, nil
}

// Verify checks that every part is there with its recorded size and
// SHA-256 (the dump was read back whole when it was taken; the checksum
// proves it is still those bytes).
func (m *Manager) Verify(ctx context.Context, id string) (procedures.BackupInfo, error) {
	man, dir, err := m.load(id)
	if err != nil {
		return procedures.BackupInfo{}, err
	}
	if err := verifyParts(ctx, dir, man); err != nil {
		return procedures.BackupInfo{}, fmt.Errorf("backup %s failed verification: %w", id, err)
	}
	return man.info(), nil
}

func verifyParts(ctx context.Context, dir string, man *Manifest) error {
	if !man.Verified {
		return errors.New("it was never verified")
	}
	want := []string{partDatabase, partStorage}
	var errs []error
	for _, p := range man.Parts {
		want = slices.DeleteFunc(want, func(s string) bool { return s == p.Name })
		if err := verifyPart(ctx, dir, p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	for _, w := range want {
		errs = append(errs, fmt.Errorf("the manifest lists no %s", w))
	}
	return errors.Join(errs...)
}

func verifyPart(ctx context.Context, dir string, p Part) error {
	if p.Name != filepath.Base(p.Name) {
		return errors.New("bad part name")
	}
	f, err := os.Open(filepath.Join(dir, p.Name))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != p.Size {
		return fmt.Errorf("size %d, the manifest says %d (truncated or changed)", fi.Size(), p.Size)
	}
	if p.Size == 0 {
		return errors.New("empty")
	}
	h := sha256.New()
	if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: f}); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return errors.New("checksum mismatch (the file was changed or damaged)")
	}
	return nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// RestoreOptions changes what Restore accepts.
type RestoreOptions struct {
	// Force restores a backup whose manifest names another cluster or
	// database.
	Force bool
}

// Restore verifies a backup, then puts the database and the storage
// folder back exactly as they were when it was taken.
func (m *Manager) Restore(ctx context.Context, id string, progress procedures.Progress) error {
	return m.RestoreWith(ctx, id, RestoreOptions{Force: m.opts.Force}, progress)
}

// RestoreWith is Restore with options.
func (m *Manager) RestoreWith(ctx context.Context, id string, ro RestoreOptions, progress procedures.Progress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if progress == nil {
		progress = func(string) {}
	}
	man, dir, err := m.load(id)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var mismatch []string
	if man.Cluster != m.opts.Cluster {
		mismatch = append(mismatch, fmt.Sprintf("cluster %q (this is %q)", man.Cluster, m.opts.Cluster))
	}
	if man.Database.Name != m.db.name {
		mismatch = append(mismatch, fmt.Sprintf("database %q (this is %q)", man.Database.Name, m.db.name))
	}
	if len(mismatch) > 0 {
		if !ro.Force {
			return fmt.Errorf("restore %s refused: the backup belongs to %s; force it to restore anyway", id, strings.Join(mismatch, " and "))
		}
		m.log.Warn().Str("backup", id).Strs("mismatch", mismatch).Msg("forced restore into another cluster or database")
		progress("restore: forced although the backup belongs to " + strings.Join(mismatch, " and "))
	}
	progress(fmt.Sprintf("restore %s: checking checksums (%s)", id, humanBytes(man.Size())))
	if err := verifyParts(ctx, dir, man); err != nil {
		return fmt.Errorf("restore %s refused, nothing was changed: the backup failed verification: %w", id, err)
	}
	start := time.Now()
	log := m.log.With().Str("backup", id).Logger()
	log.Info().Msg("restore started")

	progress(fmt.Sprintf("database: restoring %s into %s (one transaction)", humanBytes(partSize(man, partDatabase)), m.db.name))
	if err := m.restorePart(ctx, dir, partDatabase, "database", progress, m.db.restore); err != nil {
		log.Error().Err(err).Msg("database restore failed")
		return fmt.Errorf("restore %s: %w (the database was rolled back; storage untouched)", id, err)
	}
	progress("database: restored")

	progress(fmt.Sprintf("storage: restoring %s into %s", humanBytes(partSize(man, partStorage)), m.storageSource()))
	if err := m.restorePart(ctx, dir, partStorage, "storage", progress, func(ctx context.Context, r io.Reader) error {
		return m.restoreStorage(ctx, r, id, progress)
	}); err != nil {
		log.Error().Err(err).Msg("storage restore failed")
		return fmt.Errorf("restore %s: database restored, but storage: %w", id, err)
	}
	progress("storage: restored")
	took := time.Since(start).Round(100 * time.Millisecond)
	log.Info().Dur("took", took).Msg("restore done")
	progress(fmt.Sprintf("restore %s done in %s", id, took))
	return nil
}

func partSize(man *Manifest, name string) int64 {
	for _, p := range man.Parts {
		if p.Name == name {
			return p.Size
		}
	}
	return 0
}

func (m *Manager) restorePart(ctx context.Context, dir, name, label string, progress procedures.Progress,
	restore func(ctx context.Context, r io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	var n countingWriter
	stop := m.reportSize(label, &n, progress)
	defer stop()
	return restore(ctx, io.TeeReader(f, &n))
}

func (m *Manager) restoreStorage(ctx context.Context, r io.Reader, id string, progress procedures.Progress) error {
	if m.opts.StorageHostPath != "" {
		if err := os.MkdirAll(m.opts.StorageHostPath, 0o755); err != nil {
			return err
		}
		return replaceHostFolder(ctx, m.opts.StorageHostPath, r, m.opts.Excludes, ".nocobot-restore-"+id)
	}
	// Clearing the folder needs a command in the container, which works
	// only while it runs; a stopped node's folder can only be written
	// over.
	err := m.containers.Exec(ctx, m.opts.StorageContainer,
		append([]string{"sh", "-c", clearContainerScript, "nocobot", m.opts.StoragePath}, topLevel(m.opts.Excludes)...), nil, nil)
	if err != nil {
		m.log.Warn().Err(err).Msg("storage: could not clear the folder in the container; writing over it")
		progress("storage: the folder could not be emptied first (is " + m.opts.StorageContainer +
			" stopped?): files added since the backup stay; restored files are written over")
	}
	return m.containers.CopyTo(ctx, m.opts.StorageContainer, m.opts.StoragePath, r)
}

// List returns the cluster's complete backups, newest first.
func (m *Manager) List(ctx context.Context) ([]procedures.BackupInfo, error) {
	mans, _, err := m.scan()
	if err != nil {
		return nil, err
	}
	out := make([]procedures.BackupInfo, 0, len(mans))
	for _, man := range mans {
		out = append(out, man.info())
	}
	return out, nil
}

// scan reads the cluster's backup folders: complete ones (newest first)
// and incomplete ones (no manifest).
func (m *Manager) scan() ([]*Manifest, []string, error) {
	entries, err := os.ReadDir(m.opts.Dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list backups: %w", err)
	}
	var mans []*Manifest
	var incomplete []string
	prefix := m.opts.Cluster + "-"
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		man, _, err := m.load(e.Name())
		if err != nil {
			if _, serr := os.Stat(filepath.Join(m.opts.Dest, e.Name(), manifestName)); errors.Is(serr, fs.ErrNotExist) {
				incomplete = append(incomplete, e.Name())
			} else {
				m.log.Warn().Err(err).Msg("list backups: skipped")
			}
			continue
		}
		if man.Cluster != m.opts.Cluster {
			continue // another cluster whose name starts like ours
		}
		mans = append(mans, man)
	}
	slices.SortFunc(mans, func(a, b *Manifest) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return mans, incomplete, nil
}

// Prune applies the retention rules and returns the ids it deleted.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prune(ctx, "")
}

// staleAfter is when a folder without a manifest (a crash in the middle of
// a backup) is removed, unless its run protects it.
const staleAfter = 24 * time.Hour

func (m *Manager) prune(ctx context.Context, keep string) ([]string, error) {
	mans, incomplete, err := m.scan()
	if err != nil {
		return nil, err
	}
	if m.opts.KeepLast == 0 && m.opts.MaxAge == 0 && len(incomplete) == 0 {
		return nil, nil
	}
	protected := map[string]bool{}
	if m.opts.Protect != nil {
		if protected, err = m.opts.Protect(ctx); err != nil {
			return nil, fmt.Errorf("retention skipped: cannot tell which backups unfinished runs need: %w", err)
		}
	}
	now := m.opts.Now()
	var doomed []string
	for i, man := range mans {
		if i == 0 || man.ID == keep || protected[man.ID] {
			continue
		}
		if (m.opts.KeepLast > 0 && i >= m.opts.KeepLast) || (m.opts.MaxAge > 0 && now.Sub(man.Created) > m.opts.MaxAge) {
			doomed = append(doomed, man.ID)
		}
	}
	for _, id := range incomplete {
		if id == keep || protected[id] {
			continue
		}
		if fi, err := os.Stat(filepath.Join(m.opts.Dest, id)); err == nil && now.Sub(fi.ModTime()) > staleAfter {
			doomed = append(doomed, id)
		}
	}
	var deleted []string
	var errs []error
	for _, id := range doomed {
		if err := os.RemoveAll(filepath.Join(m.opts.Dest, id)); err != nil {
			errs = append(errs, fmt.Errorf("delete backup %s: %w", id, err))
			continue
		}
		m.log.Info().Str("backup", id).Msg("retention: backup deleted")
		deleted = append(deleted, id)
	}
	return deleted, errors.Join(errs...)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
