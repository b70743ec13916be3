package backup

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

// A folder dump taken inside the downtime is written uncompressed where
// there is room (Options.Compress "after"): on few cores, compressing and
// then decompressing every file to check it costs as much CPU as the dump
// itself. Once traffic is back, Export compresses it here. pg_restore
// finds "3456.dat" or "3456.dat.gz", whichever is there, so the folder
// restores the same before, during and after this.
//
// Each file is compressed beside the plain one and renamed into place;
// the manifest then names the compressed files, and only then are the
// plain ones removed. A crash at any point leaves a folder that restores:
// the manifest names files that are there, and a later Export finishes.

// compact compresses the uncompressed table data of man's folder dump in
// dir, if any, and records it in the manifest.
func (m *Manager) compact(ctx context.Context, dir string, man *Manifest, progress ports.Progress) error {
	if m.opts.Compress == CompressNever {
		return nil
	}
	removeReplaced(dir, man)
	plain := man.plainTableData()
	if len(plain) == 0 {
		return nil
	}
	start := time.Now()
	var before, after int64
	parts := append([]Part(nil), man.Parts...)
	for _, i := range plain {
		if err := ctx.Err(); err != nil {
			return err
		}
		gz, err := m.compressFile(ctx, dir, man.Parts[i])
		if errors.Is(err, errDumpChanged) {
			return fmt.Errorf("compress %s: %w: the backup no longer verifies", man.Parts[i].Name, err)
		}
		if err != nil {
			return fmt.Errorf("compress %s: %w (the backup is whole, uncompressed)", man.Parts[i].Name, err)
		}
		before += man.Parts[i].Size
		after += gz.Size
		parts[i] = gz
	}
	// The compressed files' names must be on disk before the manifest
	// names them: after a power loss it could name files that are not.
	if err := syncDir(filepath.Join(dir, partDatabaseDir)); err != nil {
		return fmt.Errorf("compress: %w (the backup is whole, uncompressed)", err)
	}
	man.Parts = parts
	if err := writeManifest(dir, man); err != nil {
		return err
	}
	removeReplaced(dir, man)
	progress(fmt.Sprintf("database dump compressed at level %d once traffic was back: %s → %s in %s", m.opts.CompressLevel,
		format.Bytes(before), format.Bytes(after), time.Since(start).Round(100*time.Millisecond)))
	return nil
}

// compressFile writes p's file compressed beside it, checking on the way
// that the plain file is still the bytes its checksum says, and returns
// the compressed file's part.
func (m *Manager) compressFile(ctx context.Context, dir string, p Part) (Part, error) {
	src, err := os.Open(filepath.Join(dir, p.Name))
	if err != nil {
		return Part{}, err
	}
	defer src.Close()
	name := p.Name + ".gz"
	tmp := filepath.Join(dir, name+".tmp")
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Part{}, err
	}
	defer os.Remove(tmp) // gone after the rename; removed on failure
	defer dst.Close()
	plainSum, gzSum := sha256.New(), sha256.New()
	var n countingWriter
	fw := &fileWriter{f: dst}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(fw, gzSum, &n), m.opts.CompressLevel)
	if err != nil {
		return Part{}, err
	}
	_, err = io.Copy(zw, io.TeeReader(&ctxReader{ctx: ctx, r: src}, plainSum))
	err = errors.Join(err, zw.Close())
	if err := noSpace(fw.err); err != nil {
		return Part{}, err
	}
	if err != nil {
		return Part{}, err
	}
	if got := hex.EncodeToString(plainSum.Sum(nil)); got != p.SHA256 {
		return Part{}, errDumpChanged
	}
	if err := errors.Join(dst.Sync(), dst.Close()); err != nil {
		return Part{}, errors.Join(noSpace(err), err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return Part{}, err
	}
	return Part{Name: name, Size: n.n.Load(), SHA256: hex.EncodeToString(gzSum.Sum(nil))}, nil
}

// errDumpChanged: a plain file no longer has the checksum it was taken
// with.
var errDumpChanged = errors.New("checksum mismatch: the dump changed since it was taken")

// removeReplaced removes plain data files whose compressed file the
// manifest names (left by a crash between the manifest and the removal).
func removeReplaced(dir string, man *Manifest) {
	for _, p := range man.Parts {
		if plain, ok := strings.CutSuffix(p.Name, ".gz"); ok && strings.HasPrefix(p.Name, partDatabaseDir+"/") && isTableData(filepath.Base(plain)) {
			os.Remove(filepath.Join(dir, plain))
		}
	}
}
