package nbdata

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Source is what goes into an .nbdata.
type Source struct {
	Metadata Metadata
	// DataFile is one dump file (pg_dump -Fc, or a MySQL dump); DataDir a
	// pg_dump directory archive, stored as "data/…" (pg_restore reads
	// either; NocoBase passes "data" to it as it is).
	DataFile string
	DataDir  string
	// DataDirFiles, when set, are the only files of DataDir taken (paths
	// relative to it, with "/").
	DataDirFiles []string
	// Storage is a tar of NocoBase's storage folder (nocobot's
	// storage.tar): its "uploads/…" go in as they are, and
	// "apps/<App>/aes_key.dat" as "aes_key.dat". Nil: no files.
	Storage io.Reader
	App     string // the app's name, "main" when empty
}

// Write makes file from src: a zip as the Backup manager makes it,
// encrypted when password is set. It writes beside file and renames at
// the end, so a failure leaves no half file.
func Write(ctx context.Context, file string, src Source, password string) (err error) {
	if (src.DataFile == "") == (src.DataDir == "") {
		return errors.New("nbdata: exactly one of a dump file and a dump folder is needed")
	}
	if src.Metadata.Plugins == nil {
		src.Metadata.Plugins = []Plugin{}
	}
	if src.Metadata.MetadataVersion == 0 {
		src.Metadata.MetadataVersion = MetadataVersion
	}
	app := src.App
	if app == "" {
		app = "main"
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.part")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	var out io.Writer = bw
	var enc io.WriteCloser
	if password != "" {
		if enc, err = encryptWriter(bw, password); err != nil {
			return err
		}
		out = enc
	}
	zw := zip.NewWriter(ctxWriter{ctx, out})
	meta, err := json.MarshalIndent(src.Metadata, "", "  ")
	if err != nil {
		return err
	}
	if err := addBytes(zw, entryMetadata, meta); err != nil {
		return err
	}
	if src.DataFile != "" {
		err = addFile(zw, entryData, src.DataFile)
	} else {
		err = addDir(ctx, zw, entryData, src.DataDir, src.DataDirFiles)
	}
	if err != nil {
		return fmt.Errorf("adding the dump: %w", err)
	}
	if src.Storage != nil {
		if err := addStorage(zw, src.Storage, app); err != nil {
			return fmt.Errorf("adding the uploads: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

func addBytes(zw *zip.Writer, name string, b []byte) error {
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// addFile stores a dump as it is: pg_dump's archives are compressed
// already.
func addFile(zw *zip.Writer, name, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}

func addDir(ctx context.Context, zw *zip.Writer, prefix, dir string, only []string) error {
	if _, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "/"}); err != nil {
		return err
	}
	if only != nil {
		for _, rel := range only {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !validEntryName(rel) || strings.Contains(rel, "/") {
				return fmt.Errorf("dump file %q is not a plain name", rel)
			}
			if err := addFile(zw, path.Join(prefix, rel), filepath.Join(dir, rel)); err != nil {
				return err
			}
		}
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := path.Join(prefix, filepath.ToSlash(rel))
		if d.IsDir() {
			_, err := zw.CreateHeader(&zip.FileHeader{Name: name + "/"})
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", rel)
		}
		return addFile(zw, name, p)
	})
}

// addStorage copies the uploads and the app's AES key out of a storage
// tar, the files NocoBase's restore puts back (managers/restore.js
// #restoreFilesAndCleanup).
func addStorage(zw *zip.Writer, r io.Reader, app string) error {
	tr := tar.NewReader(r)
	keyName := "apps/" + app + "/" + entryAESKey
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean(hdr.Name), "./")
		switch {
		case name == keyName && hdr.Typeflag == tar.TypeReg:
			w, err := zw.CreateHeader(&zip.FileHeader{Name: entryAESKey, Method: zip.Deflate})
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, tr); err != nil {
				return err
			}
		case strings.HasPrefix(name+"/", dirUploads) && validEntryName(name):
			switch hdr.Typeflag {
			case tar.TypeDir:
				if _, err := zw.CreateHeader(&zip.FileHeader{Name: name + "/"}); err != nil {
					return err
				}
			case tar.TypeReg:
				fh := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: hdr.ModTime}
				fh.SetMode(hdr.FileInfo().Mode())
				w, err := zw.CreateHeader(fh)
				if err != nil {
					return err
				}
				if _, err := io.Copy(w, tr); err != nil {
					return err
				}
			}
		}
	}
}
