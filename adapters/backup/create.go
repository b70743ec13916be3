package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

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
func (m *Manager) Create(ctx context.Context, req ports.BackupRequest, progress ports.Progress) (ports.BackupInfo, error) {
	if err := m.resolveStorage(ctx); err != nil {
		return ports.BackupInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if progress == nil {
		progress = func(string) {}
	}
	if req.Cluster != "" && req.Cluster != m.opts.Cluster {
		return ports.BackupInfo{}, fmt.Errorf("backup: asked for cluster %q, configured for %q", req.Cluster, m.opts.Cluster)
	}
	start := m.opts.Now()
	if err := os.MkdirAll(m.opts.Dest, 0o700); err != nil {
		return ports.BackupInfo{}, fmt.Errorf("backup destination: %w", err)
	}
	// Which kind to take is asked at the same time: this is inside the
	// downtime.
	var plan Plan
	planned := make(chan struct{})
	go func() {
		defer close(planned)
		plan = m.Plan(ctx)
	}()
	serverVersion, dbSize, err := m.db.serverInfo(ctx)
	<-planned
	if err != nil {
		return ports.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	need, free, _ := m.room(ctx, dbSize)
	id, dir, err := m.newID()
	if err != nil {
		return ports.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	log := m.log.With().Str("backup", id).Logger()
	log.Info().Str("database", m.db.source()).Str("storage", m.storageSource()).Msg("backup started")
	progress(fmt.Sprintf("backup %s: database %s (%s %s) and storage (%s)", id, m.db.name(), m.db.dialect(), serverVersion, m.storageSource()))

	man := &Manifest{
		Format: 1, ID: id, Cluster: m.opts.Cluster, RunID: req.RunID,
		NocoBaseVersion: req.Version, Image: req.Image, Created: start.UTC(),
		Database: DatabaseInfo{Dialect: m.db.dialect(), Name: m.db.name(), ServerVersion: serverVersion, Source: m.db.source(), ExcludedSchemas: m.db.excluded()},
		Storage:  StorageInfo{Source: m.storageSource(), Excludes: m.opts.Excludes},
	}
	// Sessions of nodes that just stopped end a moment after their
	// clients: give them that moment before settling for a dump.
	for wait := 0; plan.Kind == KindDump && strings.HasSuffix(plan.Reason, whySessions) && wait < 10 && ctx.Err() == nil; wait++ {
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
			plan = m.Plan(ctx)
		}
	}
	progress(fmt.Sprintf("backup kind: %s (%s)", plan.Kind, plan.Reason))
	// The two parts come from different places (database server, storage
	// volume): taking them together shortens the downtime.
	var (
		wg           sync.WaitGroup
		dbParts      []Part
		stPart       Part
		dbErr, stErr error
		files        int64
		// plainTried: the dump was begun uncompressed; plainKept: the
		// dump taken is uncompressed.
		plainTried, plainKept bool
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if plan.Kind == KindCopy {
			name, sig, err := m.copyDatabase(ctx, id, plan.copy.clone, progress)
			if err == nil {
				man.Database.Copy, man.Database.CopySignature = name, sig
				return
			}
			log.Warn().Err(err).Msg("in-server copy failed; dumping instead")
			progress("database: the in-server copy failed (" + err.Error() + "); dumping instead")
		}
		// Room for the uncompressed dump beside a backup of the usual size
		// (the storage archive is written at the same time).
		level := m.dumpLevel(dbSize+need, free)
		_, toDir := m.dumpsToDir(m.db)
		forNow := toDir && level == 0 && m.opts.Compress == CompressAfter // compressed once traffic is back
		if forNow {
			progress("database: dumped uncompressed, the fastest to write and check; compressed once traffic is back")
		}
		dbParts, dbErr = m.dumpDatabase(ctx, dir, m.db, level, progress)
		plainTried, plainKept = forNow, forNow && dbErr == nil
		if forNow && errors.Is(dbErr, errNoSpace) {
			progress("database: no room for the uncompressed dump; dumping again, compressed")
			if dbErr = os.RemoveAll(filepath.Join(dir, partDatabaseDir)); dbErr == nil {
				dbParts, dbErr = m.dumpDatabase(ctx, dir, m.db, m.keptLevel(), progress)
			}
		}
	}()
	go func() {
		defer wg.Done()
		stPart, files, stErr = m.backupStorage(ctx, dir, progress)
	}()
	wg.Wait()
	// The uncompressed dump and the storage archive fill the same disk at
	// once: where the archive found it full, both are taken again, the
	// dump compressed, one after the other.
	if plainTried && errors.Is(stErr, errNoSpace) && (dbErr == nil || errors.Is(dbErr, errNoSpace)) {
		progress("storage: no room beside the uncompressed database dump; taking both again, the dump compressed")
		if stErr = os.Remove(filepath.Join(dir, partStorage)); errors.Is(stErr, fs.ErrNotExist) {
			stErr = nil
		}
		if stErr == nil && (dbErr != nil || plainKept) {
			if dbErr = os.RemoveAll(filepath.Join(dir, partDatabaseDir)); dbErr == nil {
				dbParts, dbErr = m.dumpDatabase(ctx, dir, m.db, m.keptLevel(), progress)
			}
		}
		if stErr == nil && dbErr == nil {
			stPart, files, stErr = m.backupStorage(ctx, dir, progress)
		}
	}
	fail := func(err error) (ports.BackupInfo, error) {
		os.RemoveAll(dir)
		if man.Database.Copy != "" {
			err = errors.Join(err, m.db.(copier).dropCopy(context.WithoutCancel(ctx), man.Database.Copy))
		}
		log.Error().Err(err).Msg("backup failed")
		return ports.BackupInfo{}, fmt.Errorf("backup %s failed (removed): %w", id, err)
	}
	if err := errors.Join(dbErr, stErr); err != nil {
		if errors.Is(err, errNoSpace) {
			needs := "about " + format.Bytes(need)
			if need <= free {
				needs = "more than " + format.Bytes(free) // the estimate was short
			}
			err = fmt.Errorf("no space left on %s (needs %s, has %s)", m.opts.Dest, needs, format.Bytes(free))
		}
		return fail(err)
	}
	man.Kind = KindDump
	man.Parts = append(dbParts, stPart)
	if man.Database.Copy != "" {
		man.Kind = KindCopy
		man.Parts = []Part{stPart}
	}
	man.Storage.Files = files
	var dumped int64
	for _, p := range dbParts {
		dumped += p.Size
	}
	if (man.Kind == KindDump && dumped == 0) || stPart.Size == 0 {
		return fail(errors.New("empty part"))
	}
	xParts, xRecs, err := m.saveExtras(ctx, dir, progress)
	if err != nil {
		return fail(err)
	}
	man.Parts, man.Extras = append(man.Parts, xParts...), xRecs
	man.Verified = true
	man.Seconds = m.opts.Now().Sub(start).Seconds()
	if err := writeManifest(dir, man); err != nil {
		return fail(err)
	}
	log.Info().Int64("size", man.Size()).Float64("seconds", man.Seconds).Msg("backup verified")
	dbDesc := format.Bytes(dumped)
	if man.Kind == KindCopy {
		dbDesc = "in-server copy " + man.Database.Copy + ", " + man.Database.CopySignature
	}
	progress(fmt.Sprintf("backup %s (%s) verified: %s in %s (database %s, storage %s, %d files)", id, man.Kind,
		format.Bytes(man.Size()), time.Duration(man.Seconds*float64(time.Second)).Round(100*time.Millisecond),
		dbDesc, format.Bytes(stPart.Size), files))

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
func (m *Manager) createPart(ctx context.Context, dir, name, label string, progress ports.Progress,
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
	fw := &fileWriter{f: f}
	stop := m.reportSize(label, &n, progress)
	err = write(ctx, io.MultiWriter(fw, h, &n))
	stop()
	if err := noSpace(fw.err); err != nil {
		return Part{}, err
	}
	if err != nil {
		return Part{}, err
	}
	if err := f.Sync(); err != nil {
		return Part{}, errors.Join(noSpace(err), fmt.Errorf("%s: %w", name, err))
	}
	if err := f.Close(); err != nil {
		return Part{}, errors.Join(noSpace(err), fmt.Errorf("%s: %w", name, err))
	}
	return Part{Name: name, Size: n.n.Load(), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// extra pass over the data.
func (m *Manager) backupDatabase(ctx context.Context, dir string, db database, progress ports.Progress) (Part, error) {
	progress("database: dumping " + db.name())
	var checkErr error
	part, err := m.createPart(ctx, dir, partDatabase, "database", progress, func(ctx context.Context, w io.Writer) error {
		pr, pw := io.Pipe()
		checked := make(chan struct{})
		go func() {
			defer close(checked)
			checkErr = db.check(ctx, pr)
			// If the check stopped early, the dump must not block on it.
			pr.CloseWithError(errors.New("the dump check stopped reading"))
		}()
		err := db.dump(ctx, io.MultiWriter(w, pw))
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
	progress(fmt.Sprintf("database: %s dumped and read back whole", format.Bytes(part.Size)))
	return part, nil
}

// dumpDatabase dumps db into the backup folder: in parallel into a folder
// (at level; 0 is uncompressed) where it can, else as one stream.
func (m *Manager) dumpDatabase(ctx context.Context, dir string, db database, level int, progress ports.Progress) ([]Part, error) {
	if dd, ok := m.dumpsToDir(db); ok {
		return m.backupDatabaseDir(ctx, dir, db, dd, level, progress)
	}
	p, err := m.backupDatabase(ctx, dir, db, progress)
	if err != nil {
		return nil, err
	}
	return []Part{p}, nil
}

// copyDatabase copies the database inside its server and verifies the
// copy; it returns the copy's name and signature.
func (m *Manager) copyDatabase(ctx context.Context, id string, clone bool, progress ports.Progress) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	c := m.db.(copier)
	name := copyName(m.db.name(), id)
	progress("database: copying " + m.db.name() + " inside the server into " + name)
	start := time.Now()
	sig, how, err := c.copyTo(ctx, name, clone)
	if err != nil {
		return "", "", err
	}
	progress(fmt.Sprintf("database: %s; %s in all (%s)", how, time.Since(start).Round(10*time.Millisecond), sig))
	return name, sig, nil
}

func (m *Manager) backupStorage(ctx context.Context, dir string, progress ports.Progress) (Part, int64, error) {
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
	progress(fmt.Sprintf("storage: %s, %d files", format.Bytes(part.Size), st.files))
	return part, st.files, nil
}
