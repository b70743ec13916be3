package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nocobot/nocobot/ports"
)

// Verify checks that every part is there with its recorded size and
// SHA-256 (the dump was read back whole when it was taken; the checksum
// proves it is still those bytes).
func (m *Manager) Verify(ctx context.Context, id string) (ports.BackupInfo, error) {
	man, dir, err := m.load(id)
	if err != nil {
		return ports.BackupInfo{}, err
	}
	if h := man.holds(); h != "" {
		return ports.BackupInfo{}, fmt.Errorf("backup %s holds %s", id, h)
	}
	if err := verifyParts(ctx, dir, man); err != nil {
		return ports.BackupInfo{}, fmt.Errorf("backup %s failed verification: %w", id, err)
	}
	if c := man.liveCopy(); c != "" && !man.hasDatabaseDump() {
		cp, ok := m.db.(copier)
		if !ok {
			return ports.BackupInfo{}, fmt.Errorf("backup %s: its database is an in-server copy, which this database cannot check", id)
		}
		if err := cp.verifyCopy(ctx, c, man.Database.CopySignature, man.Database.CopyOpened); err != nil {
			return ports.BackupInfo{}, fmt.Errorf("backup %s failed verification: %w", id, err)
		}
	}
	return man.info(), nil
}

func verifyParts(ctx context.Context, dir string, man *Manifest) error {
	if !man.Verified {
		return errors.New("it was never verified")
	}
	want := []string{partDatabase, partStorage}
	if man.liveCopy() != "" || man.hasDirDump() {
		want = []string{partStorage} // the database is in the server, or a folder
	}
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
	if base, ok := strings.CutPrefix(p.Name, partDatabaseDir+"/"); p.Name != filepath.Base(p.Name) && (!ok || base != filepath.Base(base) || base == "..") {
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
	if p.Size == 0 && !mayBeEmpty(p.Name) {
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

// mayBeEmpty: an uncompressed data file of a folder dump, which is empty
// for an empty large object (blob_N.dat); every other part has at least
// a header.
func mayBeEmpty(name string) bool {
	base, ok := strings.CutPrefix(name, partDatabaseDir+"/")
	return ok && strings.HasSuffix(base, ".dat") && base != "toc.dat"
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
