package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

// RestoreOptions changes what Restore accepts.
type RestoreOptions struct {
	// Force restores a backup whose manifest names another cluster or
	// database.
	Force bool
}

// Restore verifies a backup, then puts the database and the storage
// folder back exactly as they were when it was taken.
func (m *Manager) Restore(ctx context.Context, id string, progress ports.Progress) error {
	return m.RestoreWith(ctx, id, RestoreOptions{Force: m.opts.Force}, progress)
}

// RestoreWith is Restore with options.
func (m *Manager) RestoreWith(ctx context.Context, id string, ro RestoreOptions, progress ports.Progress) error {
	ctx, cancel := ownDeadline(ctx, m.opts.RestoreTimeout)
	defer cancel()
	if err := m.resolveStorage(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if progress == nil {
		progress = func(string) {}
	}
	man, dir, err := m.load(id)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := m.refuse(id, man, ro, progress); err != nil {
		return err
	}
	if err := m.settleSwap(ctx, id, man, dir); err != nil {
		return err
	}
	if man.StoragePending {
		return m.finishStorage(ctx, id, man, dir, progress)
	}
	if man.ExtrasPending {
		progress(fmt.Sprintf("restore %s: the database and storage were restored by an earlier attempt; putting back %s", id, man.extraParts()))
		if err := m.finishExtras(ctx, dir, man, progress); err != nil {
			return fmt.Errorf("restore %s: database and storage restored, but %w; retry the restore", id, err)
		}
		progress(fmt.Sprintf("restore %s done: %s put back; the database and storage were restored before", id, man.extraParts()))
		return nil
	}
	if man.liveCopy() == "" && !man.hasDatabaseDump() && man.Database.Copy != "" {
		return fmt.Errorf("restore %s refused, nothing was changed: %s; restore a backup that holds a dump", id, man.holds())
	}
	if c := man.liveCopy(); c != "" {
		cp, ok := m.db.(copier)
		err := errors.New("this database cannot check in-server copies")
		if ok {
			err = cp.verifyCopy(ctx, c, man.Database.CopySignature, man.Database.CopyOpened)
		}
		if err != nil && !man.hasDatabaseDump() {
			return fmt.Errorf("restore %s refused, nothing was changed: %w", id, err)
		}
		if err != nil {
			progress("restore: the in-server copy is not usable (" + err.Error() + "); restoring the dump")
			man.Database.CopyGone = true
		}
	}
	// Where nothing live changes before the swap (an in-server copy, a
	// folder dump restored into a fresh database), the checksums are
	// checked while the storage is unpacked and the database restored;
	// a restore in place waits for them.
	inPlace := man.liveCopy() == "" && !man.hasDirDump()
	progress(fmt.Sprintf("restore %s: checking checksums (%s)", id, format.Bytes(man.Size())))
	verify := func() error {
		if err := verifyParts(ctx, dir, man); err != nil {
			return fmt.Errorf("restore %s refused, nothing was changed: the backup failed verification: %w", id, err)
		}
		return nil
	}
	if inPlace {
		if err := verify(); err != nil {
			return err
		}
	}
	if err := m.canChangeStorage(ctx); err != nil {
		return fmt.Errorf("restore %s refused, nothing was changed: %w", id, err)
	}
	start := time.Now()
	log := m.log.With().Str("backup", id).Logger()
	log.Info().Msg("restore started")

	progress(fmt.Sprintf("storage: unpacking %s for %s", format.Bytes(partSize(man, partStorage)), m.storageSource()))
	var (
		wg            sync.WaitGroup
		st            staged
		stErr, verErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		stErr = m.restorePart(ctx, dir, partStorage, "storage", progress, func(ctx context.Context, r io.Reader) error {
			var err error
			st, err = m.stageStorage(ctx, r, id)
			return err
		})
	}()
	if !inPlace {
		wg.Add(1)
		go func() {
			defer wg.Done()
			verErr = verify()
		}()
	}
	var dbErr error
	fresh := ""
	switch {
	case man.liveCopy() != "":
	case man.hasDirDump():
		dd, ok := m.db.(dirDumper)
		if !ok {
			dbErr = errors.New("the backup's dump is a folder, which this database cannot restore")
			break
		}
		progress(fmt.Sprintf("database: pg_restore -j %d into a fresh database", m.opts.Jobs))
		rctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
		fresh, dbErr = dd.restoreDirFresh(rctx, filepath.Join(dir, partDatabaseDir), m.opts.Jobs)
		cancel()
	default:
		progress(fmt.Sprintf("database: restoring %s into %s (all or nothing)", format.Bytes(partSize(man, partDatabase)), m.db.name()))
		dbErr = m.restorePart(ctx, dir, partDatabase, "database", progress, m.db.restore)
	}
	wg.Wait()
	var tidy *restoredError
	if errors.As(dbErr, &tidy) {
		// The database is the backup's already: undoing the storage now
		// would leave the two apart.
		log.Warn().Err(dbErr).Msg("database restored, but tidying up after it failed")
		progress("database: " + dbErr.Error())
		dbErr = nil
	}
	undo := func() {
		if stErr == nil {
			st.drop()
		}
		if fresh != "" {
			if err := m.db.(copier).dropCopy(context.WithoutCancel(ctx), fresh); err != nil {
				log.Warn().Err(err).Str("database", fresh).Msg("restore: fresh database left behind")
			}
		}
	}
	if err := errors.Join(verErr, dbErr); err != nil || (stErr != nil && !inPlace) {
		undo()
		err = errors.Join(err, stErr)
		log.Error().Err(err).Msg("restore failed")
		if verErr != nil {
			return verErr
		}
		return fmt.Errorf("restore %s: %w (nothing was changed)", id, err)
	}
	if stErr != nil {
		log.Error().Err(stErr).Msg("storage restore failed")
		return fmt.Errorf("restore %s: database restored, but storage (untouched): %w", id, stErr)
	}
	// The swaps: a moment each, database first.
	switch {
	case man.liveCopy() != "":
		progress("database: swapping in the in-server copy " + man.liveCopy())
		dbErr = m.swapInCopy(ctx, man, dir)
	case fresh != "":
		progress("database: swapping in the restored database")
		c := m.db.(copier)
		old, dropNow := c.replacedName()
		if dbErr = c.swapIn(ctx, fresh, old); dbErr == nil {
			fresh = ""
			m.dropAtOnce(ctx, old, dropNow)
		}
	}
	if dbErr != nil {
		undo()
		log.Error().Err(dbErr).Msg("database swap failed")
		if errors.Is(dbErr, errSwapUnsettled) {
			return fmt.Errorf("restore %s: %w", id, dbErr)
		}
		return fmt.Errorf("restore %s: %w (nothing was changed)", id, dbErr)
	}
	progress("database: restored; storage: swapping in")
	if err := st.swap(ctx); err != nil {
		log.Error().Err(err).Msg("storage swap failed")
		return fmt.Errorf("restore %s: database restored, but storage: %w; restore again to put the storage back (the database stays restored)", id, err)
	}
	if man.StoragePending {
		man.StoragePending = false
		if err := writeManifest(dir, man); err != nil {
			return fmt.Errorf("restore %s: database and storage restored, but recording that in the backup failed: %w; restore again to record it", id, err)
		}
	}
	progress("storage: restored")
	if err := m.restoreExtras(ctx, dir, man, progress); err != nil {
		log.Error().Err(err).Msg("extra part restore failed")
		return fmt.Errorf("restore %s: database and storage restored, but %w; retry the restore", id, err)
	}
	if man.ExtrasPending {
		man.ExtrasPending = false
		if err := writeManifest(dir, man); err != nil {
			return fmt.Errorf("restore %s: database, storage and %s restored, but recording that in the backup failed: %w; restore again to record it", id, man.extraParts(), err)
		}
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	log.Info().Dur("took", took).Msg("restore done")
	progress(fmt.Sprintf("restore %s done in %s", id, took))
	return nil
}

// refuse fails for a backup that must not be restored here: another
// engine, one that would rewind nocobot's own schema, or (unless forced)
// another cluster's or database's.
func (m *Manager) refuse(id string, man *Manifest, ro RestoreOptions, progress ports.Progress) error {
	if d := man.Database.Dialect; d != "" && d != m.db.dialect() {
		return fmt.Errorf("restore %s refused: it holds a %s database, this cluster's is %s", id, d, m.db.dialect())
	}
	for _, x := range m.db.excluded() {
		if !slices.Contains(man.Database.ExcludedSchemas, x) {
			return fmt.Errorf("restore %s refused, nothing was changed: the backup holds schema %s (it was taken before the schema was excluded), and restoring it would rewind nocobot's own records", id, x)
		}
	}
	var mismatch []string
	if man.Cluster != m.opts.Cluster {
		mismatch = append(mismatch, fmt.Sprintf("cluster %q (this is %q)", man.Cluster, m.opts.Cluster))
	}
	if man.Database.Name != m.db.name() {
		mismatch = append(mismatch, fmt.Sprintf("database %q (this is %q)", man.Database.Name, m.db.name()))
	}
	if len(mismatch) > 0 {
		if !ro.Force {
			return fmt.Errorf("restore %s refused: the backup belongs to %s; force it to restore anyway", id, strings.Join(mismatch, " and "))
		}
		m.log.Warn().Str("backup", id).Strs("mismatch", mismatch).Msg("forced restore into another cluster or database")
		progress("restore: forced although the backup belongs to " + strings.Join(mismatch, " and "))
	}
	return nil
}

// ownDeadline returns a context that ends d after now or when parent is
// cancelled, but not when parent's deadline passes: a restore stopped in
// the middle by a step timeout would leave the storage half swapped, so a
// restore runs to its own deadline. An explicit cancel (abort, a lost
// lease) still stops it.
func ownDeadline(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), d)
	stop := context.AfterFunc(parent, func() {
		if !errors.Is(parent.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return ctx, func() { stop(); cancel() }
}

func partSize(man *Manifest, name string) int64 {
	for _, p := range man.Parts {
		if p.Name == name {
			return p.Size
		}
	}
	return 0
}

func (m *Manager) restorePart(ctx context.Context, dir, name, label string, progress ports.Progress,
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

// restoredError is a database restore that replaced the database and then
// failed to tidy up after itself (helper databases, records): the restore
// goes on, and says what is left.
type restoredError struct{ err error }

func (e *restoredError) Error() string { return e.err.Error() }
func (e *restoredError) Unwrap() error { return e.err }

// errSwapUnsettled: a swap whose outcome is unknown (the database server
// stopped answering around it); the next restore finds it out.
var errSwapUnsettled = errors.New("cannot tell whether the in-server copy was swapped in")

// swapInCopy swaps the backup's in-server copy in and records that the
// copy is the database now. The name the replaced database gets is
// recorded first: a restore killed around the renames leaves the manifest
// saying which names to look for (settleSwap).
func (m *Manager) swapInCopy(ctx context.Context, man *Manifest, dir string) error {
	c, ok := m.db.(copier)
	if !ok {
		return errors.New("the backup's database is an in-server copy, which this database cannot swap in")
	}
	start := time.Now()
	old, dropNow := c.replacedName()
	man.Database.SwapPending = old
	if err := writeManifest(dir, man); err != nil {
		man.Database.SwapPending = ""
		return fmt.Errorf("record the swap about to be made in the backup: %w", err)
	}
	if err := c.swapIn(ctx, man.Database.Copy, old); err != nil {
		// A client stopped after sending the renames does not stop the
		// server from committing them: the server says what happened.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if serr := m.settleSwapOn(sctx, c, man, dir); serr != nil {
			return fmt.Errorf("%w: %w; %w; restore again once the database server answers", errSwapUnsettled, err, serr)
		}
		if !man.Database.SwappedIn {
			return err
		}
	} else {
		man.Database.SwapPending = ""
		man.Database.CopyGone, man.Database.SwappedIn, man.StoragePending = true, true, true
		man.ExtrasPending = len(man.Extras) > 0
		if err := writeManifest(dir, man); err != nil {
			// The pending swap recorded above lets the next restore find
			// out from the server.
			m.log.Warn().Err(err).Msg("record that the copy was swapped in")
		}
	}
	m.log.Info().Dur("took", time.Since(start)).Str("copy", man.Database.Copy).Msg("in-server copy swapped in")
	m.dropAtOnce(ctx, old, dropNow)
	return nil
}

// dropAtOnce drops the database a swap replaced when its name would not
// be found by dropReplaced later.
func (m *Manager) dropAtOnce(ctx context.Context, old string, dropNow bool) {
	if !dropNow {
		return
	}
	if err := m.db.(copier).dropCopy(ctx, old); err != nil {
		m.log.Warn().Err(err).Str("database", old).Msg("restore: the database replaced by the swap is left; drop it by hand")
	}
}

// settleSwap finds out how a restore that was swapping the backup's copy
// in ended (it was killed, or the server stopped answering): the copy
// still there means the renames did not happen; the copy gone and the
// replaced database there means they did, and only the storage is left
// to restore.
func (m *Manager) settleSwap(ctx context.Context, id string, man *Manifest, dir string) error {
	if man.Database.SwapPending == "" || man.Database.CopyGone {
		return nil
	}
	c, ok := m.db.(copier)
	if !ok {
		return fmt.Errorf("restore %s refused, nothing was changed: an earlier restore was swapping its in-server copy in, which this database cannot check", id)
	}
	if err := m.settleSwapOn(ctx, c, man, dir); err != nil {
		return fmt.Errorf("restore %s refused, nothing was changed: %w", id, err)
	}
	return nil
}

func (m *Manager) settleSwapOn(ctx context.Context, c copier, man *Manifest, dir string) error {
	cp, old := man.Database.Copy, man.Database.SwapPending
	found, err := c.databasesExist(ctx, cp, old)
	if err != nil {
		return fmt.Errorf("cannot tell whether an earlier restore swapped the in-server copy %s in: %w", cp, err)
	}
	switch {
	case found[cp]:
		man.Database.SwapPending = ""
	case found[old]:
		man.Database.SwapPending = ""
		man.Database.CopyGone, man.Database.SwappedIn, man.StoragePending = true, true, true
		man.ExtrasPending = len(man.Extras) > 0
		m.log.Warn().Str("copy", cp).Msg("restore: an earlier restore had swapped the in-server copy in without recording it")
	default:
		return fmt.Errorf("the in-server copy %s and the database %s a swap would have replaced are both gone, so whether the database was restored is unknown: check it by hand", cp, old)
	}
	if err := writeManifest(dir, man); err != nil {
		return fmt.Errorf("record how the earlier swap ended: %w", err)
	}
	return nil
}

// finishStorage finishes a restore that swapped the copy in and then
// failed or stopped before the storage was put back: the database is the
// backup's already; the storage part is checked and swapped in.
func (m *Manager) finishStorage(ctx context.Context, id string, man *Manifest, dir string, progress ports.Progress) error {
	progress(fmt.Sprintf("restore %s: the database was restored by an earlier attempt (its in-server copy is the database now); putting the storage back", id))
	var sp *Part
	for i := range man.Parts {
		if man.Parts[i].Name == partStorage {
			sp = &man.Parts[i]
		}
	}
	if sp == nil {
		return fmt.Errorf("restore %s: the database is restored, but the backup lists no %s: the storage cannot be put back", id, partStorage)
	}
	if err := verifyPart(ctx, dir, *sp); err != nil {
		return fmt.Errorf("restore %s: the database is restored, but the storage part failed verification (%s: %w): the storage cannot be put back from this backup", id, partStorage, err)
	}
	if err := m.canChangeStorage(ctx); err != nil {
		return fmt.Errorf("restore %s: the database is restored, but the storage is not yet: %w; restore again", id, err)
	}
	var st staged
	err := m.restorePart(ctx, dir, partStorage, "storage", progress, func(ctx context.Context, r io.Reader) error {
		var err error
		st, err = m.stageStorage(ctx, r, id)
		return err
	})
	if err == nil {
		progress("storage: swapping in")
		err = st.swap(ctx)
	}
	if err != nil {
		return fmt.Errorf("restore %s: the database is restored, but storage: %w; restore again to put the storage back", id, err)
	}
	// A backup recorded before extras were tracked says nothing of them:
	// they are pending too.
	man.StoragePending, man.ExtrasPending = false, len(man.Extras) > 0
	if err := writeManifest(dir, man); err != nil {
		return fmt.Errorf("restore %s: database and storage restored, but recording that in the backup failed: %w; restore again to record it", id, err)
	}
	progress("storage: restored")
	if err := m.finishExtras(ctx, dir, man, progress); err != nil {
		return fmt.Errorf("restore %s: database and storage restored, but %w; retry the restore", id, err)
	}
	progress(fmt.Sprintf("restore %s done: storage restored; the database was restored before", id))
	return nil
}

// finishExtras puts the extra parts back for a restore whose database and
// storage an earlier attempt restored, checking their checksums first
// (the full restore checks them with the others), and records it.
func (m *Manager) finishExtras(ctx context.Context, dir string, man *Manifest, progress ports.Progress) error {
	for _, x := range man.Extras {
		for _, p := range man.Parts {
			if p.Name != x.Part {
				continue
			}
			if err := verifyPart(ctx, dir, p); err != nil {
				return fmt.Errorf("%s failed verification: %w", x.Part, err)
			}
		}
	}
	if err := m.restoreExtras(ctx, dir, man, progress); err != nil {
		return err
	}
	if !man.ExtrasPending {
		return nil
	}
	man.ExtrasPending = false
	if err := writeManifest(dir, man); err != nil {
		return fmt.Errorf("recording that %s was put back failed: %w", man.extraParts(), err)
	}
	return nil
}
