package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// The storage archive is a tar stream whose entry names are relative to the
// storage folder ("uploads/a.png", "apps/main/aes_key.dat"), without the
// folder itself and without the excluded paths. Both sources (a host
// folder, a container's folder) produce this same shape, and both
// destinations accept it.

// excluded reports whether rel (slash-separated, relative) is an excluded
// path or lies below one. A restore's staging folder is always excluded.
func excluded(rel string, excludes []string) bool {
	if strings.HasPrefix(rel, stagingPrefix) {
		return true
	}
	for _, e := range excludes {
		if rel == e || strings.HasPrefix(rel, e+"/") {
			return true
		}
	}
	return false
}

func cleanExcludes(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, e := range in {
		c := path.Clean(strings.Trim(filepath.ToSlash(e), "/"))
		if c == "." || c == ".." || strings.HasPrefix(c, "../") {
			return nil, fmt.Errorf("storage exclude %q: want a path inside the storage folder", e)
		}
		out = append(out, c)
	}
	return out, nil
}

type storageStats struct {
	files int64
}

// tarHostFolder writes root's tree (minus excludes) to w as a tar stream,
// keeping modes, owners, modification times (sub-second, PAX) and
// symlinks. Hard links are stored as separate files; sockets and FIFOs
// are skipped.
func tarHostFolder(ctx context.Context, root string, excludes []string, w io.Writer, skipped func(string)) (storageStats, error) {
	var st storageStats
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if excluded(rel, excludes) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular(), info.IsDir():
		default:
			skipped(rel)
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		// Owner names would be looked up on restore in another system's
		// user database; numeric ids are what the containers use.
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if n != info.Size() {
			return fmt.Errorf("%s changed size while being read (storage in use?)", rel)
		}
		st.files++
		return nil
	})
	if err != nil {
		return st, err
	}
	return st, tw.Close()
}

// retar rewrites a docker-cp tar stream (entries under the folder's own
// name) into the storage archive shape: the first path component is
// dropped, excluded paths are left out.
func retar(ctx context.Context, r io.Reader, excludes []string, w io.Writer) (storageStats, error) {
	var st storageStats
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	prefix := ""
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read tar from container: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if prefix == "" {
			top, _, _ := strings.Cut(strings.TrimSuffix(name, "/"), "/")
			prefix = top + "/"
		}
		if strings.TrimSuffix(name, "/")+"/" == prefix {
			continue // the storage folder itself
		}
		if !strings.HasPrefix(name, prefix) {
			return st, fmt.Errorf("unexpected entry %q in the container's tar stream", hdr.Name)
		}
		rel := strings.TrimPrefix(name, prefix)
		if excluded(strings.TrimSuffix(rel, "/"), excludes) {
			continue
		}
		hdr.Name = rel
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = strings.TrimPrefix(strings.TrimPrefix(hdr.Linkname, "./"), prefix)
			if excluded(hdr.Linkname, excludes) {
				return st, fmt.Errorf("%s is a hard link into excluded %s", rel, hdr.Linkname)
			}
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return st, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return st, fmt.Errorf("%s: %w", rel, err)
			}
			st.files++
		}
	}
	return st, tw.Close()
}

// extractTo unpacks the storage archive into dir (a new, empty folder)
// through os.Root, so no entry can escape dir by "..", an absolute name or
// a symlink planted earlier in the stream. Directory times are set last,
// once their contents are written; they are also returned so the caller
// can set them again after moving the entries.
func extractTo(ctx context.Context, r io.Reader, dir string) ([]dirTime, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	asRoot := os.Geteuid() == 0
	var dirs []dirTime
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read storage archive: %w", err)
		}
		name := path.Clean(strings.TrimSuffix(hdr.Name, "/"))
		if name == "." || !fs.ValidPath(name) {
			return nil, fmt.Errorf("storage archive: refusing entry %q", hdr.Name)
		}
		// tar keeps setuid & co. in the raw mode bits, not Go's.
		mode := fs.FileMode(hdr.Mode & 0o777)
		if hdr.Mode&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		if hdr.Mode&0o2000 != 0 {
			mode |= fs.ModeSetgid
		}
		if hdr.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return nil, err
			}
			dirs = append(dirs, dirTime{name: name, mode: mode, mtime: hdr.ModTime, uid: hdr.Uid, gid: hdr.Gid})
			continue
		case tar.TypeReg:
			if err := root.MkdirAll(path.Dir(name), 0o700); err != nil {
				return nil, err
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeSymlink:
			if err := root.MkdirAll(path.Dir(name), 0o700); err != nil {
				return nil, err
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return nil, err
			}
		case tar.TypeLink:
			target := path.Clean(hdr.Linkname)
			if !fs.ValidPath(target) {
				return nil, fmt.Errorf("storage archive: refusing hard link %q -> %q", hdr.Name, hdr.Linkname)
			}
			if err := root.MkdirAll(path.Dir(name), 0o700); err != nil {
				return nil, err
			}
			if err := root.Link(target, name); err != nil {
				return nil, err
			}
			continue
		default:
			continue // devices, FIFOs: never written by our archives
		}
		if asRoot {
			if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
				return nil, err
			}
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := root.Chmod(name, mode); err != nil {
				return nil, err
			}
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return nil, err
			}
		} else if err := lutimes(filepath.Join(dir, name), hdr.ModTime); err != nil {
			return nil, err
		}
	}
	// Deepest first, so setting a folder's time is not undone by its
	// children.
	slices.SortFunc(dirs, func(a, b dirTime) int { return strings.Count(b.name, "/") - strings.Count(a.name, "/") })
	for _, d := range dirs {
		if asRoot {
			if err := root.Lchown(d.name, d.uid, d.gid); err != nil {
				return nil, err
			}
		}
		if err := root.Chmod(d.name, d.mode); err != nil {
			return nil, err
		}
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return nil, err
		}
	}
	return dirs, nil
}

type dirTime struct {
	name     string
	mode     fs.FileMode
	mtime    time.Time
	uid, gid int
}

// lutimes sets a symlink's own times (os.Chtimes would follow it).
func lutimes(p string, t time.Time) error {
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(t.UnixNano()), syscall.NsecToTimespec(t.UnixNano())}
	b, err := syscall.BytePtrFromString(p)
	if err != nil {
		return err
	}
	const atFDCWD, atSymlinkNofollow = -0x64, 0x100
	fd := atFDCWD
	if _, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fd), uintptr(unsafe.Pointer(b)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0); e != 0 {
		return &os.PathError{Op: "lutimes", Path: p, Err: e}
	}
	return nil
}

// stageHostFolder unpacks the archive into a staging folder inside root
// (same file system, so the swap is renames, and root may be a mount
// point). Its swap makes root hold exactly the archive's tree, leaving
// excluded paths alone: the old content is moved aside, the new moved in,
// the old deleted; if moving aside fails, the old content is put back.
func stageHostFolder(ctx context.Context, root string, r io.Reader, excludes []string, staging string, rename func(from, to string) error) (staged, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return staged{}, err
	}
	tmp, old := filepath.Join(root, staging), filepath.Join(root, staging+".old")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return staged{}, err
	}
	drop := func() { os.RemoveAll(tmp) }
	dirs, err := extractTo(ctx, r, tmp)
	if err != nil {
		drop()
		return staged{}, fmt.Errorf("unpack storage archive: %w", err)
	}
	swap := func(ctx context.Context) error {
		defer drop()
		if err := os.Mkdir(old, 0o700); err != nil {
			return err
		}
		// old is removed once nothing in it is needed: after the swap, or
		// after the old content went back; on the other paths the message
		// names it.
		if err := moveAside(root, "", excludes, old, rename); err != nil {
			if uerr := moveInto(old, root, "", rename); uerr != nil {
				return fmt.Errorf("clear storage folder: %w; putting the old content back: %w (it is in %s)", err, uerr, old)
			}
			os.RemoveAll(old)
			return fmt.Errorf("clear storage folder: %w", err)
		}
		if err := moveInto(tmp, root, "", rename); err != nil {
			return fmt.Errorf("move restored storage into place: %w; the storage folder is half restored (the content it replaced is in %s)", err, old)
		}
		os.RemoveAll(old)
		// Renames changed the times of the folders that received entries.
		for _, d := range dirs {
			if err := os.Chtimes(filepath.Join(root, d.name), d.mtime, d.mtime); err != nil {
				return err
			}
		}
		return nil
	}
	return staged{swap: swap, drop: drop}, nil
}

// moveAside moves everything below root/rel into old/rel, except excluded
// paths (and the folders leading to them, which are created in old) and
// staging folders.
func moveAside(root, rel string, excludes []string, old string, rename func(from, to string) error) error {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		r := path.Join(rel, e.Name())
		if excluded(r, excludes) {
			continue
		}
		if e.IsDir() && holdsExcluded(r, excludes) {
			if err := os.MkdirAll(filepath.Join(old, r), 0o700); err != nil {
				return err
			}
			if err := moveAside(root, r, excludes, old, rename); err != nil {
				return err
			}
			continue
		}
		if err := rename(filepath.Join(root, r), filepath.Join(old, r)); err != nil {
			return err
		}
	}
	return nil
}

func holdsExcluded(dir string, excludes []string) bool {
	for _, e := range excludes {
		if strings.HasPrefix(e, dir+"/") {
			return true
		}
	}
	return false
}

// moveInto moves src/rel's entries into dst/rel; a folder that still
// exists in dst (it holds excluded paths) is merged.
func moveInto(src, dst, rel string, rename func(from, to string) error) error {
	entries, err := os.ReadDir(filepath.Join(src, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		r := filepath.Join(rel, e.Name())
		to := filepath.Join(dst, r)
		if fi, err := os.Lstat(to); err == nil && fi.IsDir() && e.IsDir() {
			if err := moveInto(src, dst, r, rename); err != nil {
				return err
			}
			continue
		}
		if err := rename(filepath.Join(src, r), to); err != nil {
			return err
		}
	}
	return nil
}

func topLevel(excludes []string) []string {
	var out []string
	for _, e := range excludes {
		top, _, _ := strings.Cut(e, "/")
		if !slices.Contains(out, top) {
			out = append(out, top)
		}
	}
	return out
}
