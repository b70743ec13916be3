package nbdata

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"strings"
)

// Entry names inside the zip (managers/restore.js restore: "data" and
// "_metadata.json" must be there; "uploads" and "aes_key.dat" may).
const (
	entryData     = "data"
	entryMetadata = "_metadata.json"
	dirUploads    = "uploads/"
	entryAESKey   = "aes_key.dat"
)

// Extension is a backup file's extension (utils.js BACKUP_EXTENSION).
const Extension = ".nbdata"

// Summary is what a whole, readable .nbdata holds.
type Summary struct {
	Metadata  Metadata
	Encrypted bool
	// DataDir: the dump is a pg_dump directory archive ("data/…", what
	// nocobot writes from its folder dumps); else one file ("data").
	DataDir     bool
	DataBytes   int64
	Uploads     int // files under uploads/
	UploadBytes int64
	AESKey      bool
	Entries     int
	// Plain is the zip itself: the file, or its decrypted copy (a
	// temporary file that Close removes).
	Plain string
	temp  bool
}

// Close removes a decrypted temporary copy.
func (s *Summary) Close() error {
	if s != nil && s.temp {
		s.temp = false
		return os.Remove(s.Plain)
	}
	return nil
}

var zipMagic = []byte("PK\x03\x04")

// Inspect reads the whole file: it decrypts it when it is not a plain zip
// (password empty: refused with a one-line reason), opens the zip, reads
// every entry to its end (each CRC-32 checked), requires "data" and
// "_metadata.json" and parses the metadata. tmpDir holds the decrypted
// copy ("" for the system's). The caller closes the summary.
func Inspect(ctx context.Context, file, password, tmpDir string) (*Summary, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	s := &Summary{Plain: file}
	if !bytes.Equal(head[:n], zipMagic) {
		if password == "" {
			return nil, errors.New("not a zip: an encrypted backup (set its password) or not an .nbdata at all")
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		tmp, err := os.CreateTemp(tmpDir, "nbdata-*.zip")
		if err != nil {
			return nil, err
		}
		s.Plain, s.temp, s.Encrypted = tmp.Name(), true, true
		err = decrypt(ctxWriter{ctx, tmp}, f, password)
		err = errors.Join(err, tmp.Close())
		if err == nil {
			err = checkMagic(s.Plain)
		}
		if err != nil {
			s.Close()
			if errors.Is(err, ErrPassword) {
				return nil, ErrPassword
			}
			return nil, fmt.Errorf("decrypting: %w", err)
		}
	}
	if err := s.readZip(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func checkMagic(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if !bytes.Equal(head[:n], zipMagic) {
		return ErrPassword
	}
	return nil
}

func (s *Summary) readZip(ctx context.Context) error {
	zr, err := zip.OpenReader(s.Plain)
	if err != nil {
		return fmt.Errorf("damaged zip: %w", err)
	}
	defer zr.Close()
	var meta []byte
	var haveData bool
	for _, e := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name
		if !validEntryName(name) {
			return fmt.Errorf("damaged or unsafe zip: entry %q leaves the archive", name)
		}
		s.Entries++
		if strings.HasSuffix(name, "/") {
			if name == entryData+"/" {
				s.DataDir = true
			}
			continue
		}
		size, body, err := readEntry(ctx, e, name == entryMetadata)
		if err != nil {
			return fmt.Errorf("damaged zip: entry %s: %w", name, err)
		}
		switch {
		case name == entryMetadata:
			meta = body
		case name == entryData:
			haveData = true
			s.DataBytes += size
		case strings.HasPrefix(name, entryData+"/"):
			haveData, s.DataDir = true, true
			s.DataBytes += size
		case strings.HasPrefix(name, dirUploads):
			s.Uploads++
			s.UploadBytes += size
		case name == entryAESKey:
			s.AESKey = true
		}
	}
	if meta == nil || !haveData {
		return errors.New("not a NocoBase backup: the zip lacks \"data\" or \"_metadata.json\"")
	}
	if err := json.Unmarshal(meta, &s.Metadata); err != nil {
		return fmt.Errorf("_metadata.json is not readable: %w", err)
	}
	if s.Metadata.Plugins == nil {
		return errors.New("_metadata.json has no plugins list (NocoBase's restore would fail on it)")
	}
	return nil
}

// readEntry reads an entry to its end; archive/zip checks its CRC-32 and
// size there. keep returns the bytes (the metadata, which is small).
func readEntry(ctx context.Context, e *zip.File, keep bool) (int64, []byte, error) {
	rc, err := e.Open()
	if err != nil {
		return 0, nil, err
	}
	defer rc.Close()
	if keep {
		if e.UncompressedSize64 > 16<<20 {
			return 0, nil, errors.New("metadata larger than 16 MiB")
		}
		b, err := io.ReadAll(rc)
		return int64(len(b)), b, err
	}
	h := crc32.NewIEEE()
	n, err := io.Copy(ctxWriter{ctx, h}, rc)
	return n, nil, err
}

// validEntryName refuses what NocoBase's extractor refuses
// (utils.js resolvePathWithinBase): absolute names and "..".
func validEntryName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return false
	}
	clean := path.Clean(name)
	return clean != ".." && !strings.HasPrefix(clean, "../")
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
