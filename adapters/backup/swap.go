package backup

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// A restore makes the storage folder hold exactly the backup's tree: files
// added since the backup go too. The archive is first unpacked into a
// staging folder inside the storage folder (same file system, so the swap
// is renames, and the storage folder may be a mount point); only then is
// the old content moved aside, the new moved in and the old deleted. The
// long part (unpacking) touches nothing the nodes use, and the swap takes
// a moment. Staging folders are named per restore attempt, so two restores
// never share one, and backups leave them out.

const stagingPrefix = ".nocobot-restore-"

// stagingName is a fresh staging folder name for one restore attempt of
// backup id.
func stagingName(id string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return stagingPrefix + id + "-" + hex.EncodeToString(b)
}

// swapScript swaps a staging folder's content into a storage folder: $1 is
// the storage folder, $2 the staging folder's name in it, $3… the
// top-level entries that stay (excluded from backups). An exclude deeper
// than one level keeps its whole top-level folder; the restored entries
// are copied into it.
const swapScript = `cd -- "$1" || exit 1
st=$2; old=$2.old; shift 2
[ -d "$st" ] || { echo "staging folder $st is missing" >&2; exit 1; }
mkdir -- "$old" || exit 1
undo() {
  for p in "$old"/* "$old"/.[!.]* "$old"/..?*; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    mv -- "$p" . || true
  done
  rmdir -- "$old"
  exit 1
}
for f in * .[!.]* ..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  case "$f" in .nocobot-restore-*) continue;; esac
  keep=
  for x in "$@"; do [ "$f" = "$x" ] && keep=1; done
  [ -n "$keep" ] || mv -- "$f" "$old/" || undo
done
for p in "$st"/* "$st"/.[!.]* "$st"/..?*; do
  [ -e "$p" ] || [ -L "$p" ] || continue
  f=${p##*/}
  if [ -e "$f" ] || [ -L "$f" ]; then
    cp -a -- "$p/." "$f/" || exit 1
  else
    mv -- "$p" "$f" || exit 1
  fi
done
rm -rf -- "$st" "$old"`

// removeScript removes a staging folder after a failed restore.
const removeScript = `cd -- "$1" && rm -rf -- "$2" "$2.old"`

// staged is a storage archive unpacked into a staging folder: swap puts
// it in place, drop removes it (after swap, drop is a no-op).
type staged struct {
	swap func(ctx context.Context) error
	drop func()
}

// stageStorage unpacks the storage archive r into a fresh staging folder
// in the storage folder, touching nothing the nodes use.
func (m *Manager) stageStorage(ctx context.Context, r io.Reader, id string) (staged, error) {
	staging := stagingName(id)
	if m.opts.StorageHostPath != "" {
		return stageHostFolder(ctx, m.opts.StorageHostPath, r, m.opts.Excludes, staging, m.rename)
	}
	drop := func() {
		if err := m.runOnStorage(context.WithoutCancel(ctx), removeScript, staging); err != nil {
			m.log.Warn().Err(err).Str("staging", staging).Msg("storage: staging folder left behind")
		}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(prefixTar(r, staging, pw)) }()
	err := m.containers.CopyTo(ctx, m.opts.StorageContainer, m.opts.StoragePath, pr)
	pr.CloseWithError(errors.New("the copy stopped reading"))
	if err != nil {
		drop()
		return staged{}, err
	}
	return staged{
		swap: func(ctx context.Context) error {
			return m.runOnStorage(ctx, swapScript, append([]string{staging}, topLevel(m.opts.Excludes)...)...)
		},
		drop: drop,
	}, nil
}

// runOnStorage runs a script on the storage folder ($1): in a helper
// container with the node's volumes (the node may be stopped), or else in
// the node itself, which must then be running.
func (m *Manager) runOnStorage(ctx context.Context, script string, args ...string) error {
	dir := m.opts.StoragePath
	cmd := append([]string{"/bin/sh", "-c", script, "nocobot", dir}, args...)
	if m.helper != nil {
		err := m.helper.RunWithVolumesOf(ctx, m.opts.StorageContainer, dir, cmd)
		if !errors.Is(err, errNotOnVolume) {
			return err
		}
	}
	if err := m.containers.Exec(ctx, m.opts.StorageContainer, cmd, nil, nil); err != nil {
		return fmt.Errorf("%w (the storage folder is not on a volume, so only the running node can change it)", err)
	}
	return nil
}

// canChangeStorage fails if a restore could not swap the storage folder:
// it is asked before anything is restored, so such a restore changes
// nothing.
func (m *Manager) canChangeStorage(ctx context.Context) error {
	if m.opts.StorageHostPath != "" {
		return nil
	}
	if err := m.runOnStorage(ctx, `cd -- "$1"`); err != nil {
		return fmt.Errorf("cannot change the storage folder: %w", err)
	}
	return nil
}

// prefixTar copies the storage archive from r to w with every entry moved
// below the folder prefix.
func prefixTar(r io.Reader, prefix string, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: prefix + "/", Mode: 0o700, Format: tar.FormatPAX}); err != nil {
		return err
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read storage archive: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if name == "" || strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") {
			return fmt.Errorf("storage archive: refusing entry %q", hdr.Name)
		}
		hdr.Name = prefix + "/" + name
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = prefix + "/" + strings.TrimPrefix(hdr.Linkname, "./")
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}
