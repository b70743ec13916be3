package backup

import (
	"bytes"
	"compress/gzip"
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
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

// dirDumper is a database that dumps in parallel into a folder (pgdir.go).
type dirDumper interface {
	canDumpDir() bool
	dumpDir(ctx context.Context, dir string, jobs, level int) error
	// checkDir reads the table of contents back (pg_restore -l) and
	// returns it.
	checkDir(ctx context.Context, dir string) (string, error)
	// restoreDirFresh restores into a fresh database and returns its
	// name, to be swapped in (copier.swapIn) or dropped.
	restoreDirFresh(ctx context.Context, dir string, jobs int) (string, error)
}

// partDatabaseDir is the folder of a directory dump in a backup; each of
// its files is a part ("database/toc.dat", "database/3456.dat.gz").
const partDatabaseDir = "database"

// Dump formats (Options.DumpFormat).
const (
	FormatFolder = "folder"
	FormatStream = "stream"
)

// When a folder dump is compressed (Options.Compress).
const (
	CompressAfter = "after"
	CompressWhile = "while"
	CompressNever = "never"
)

// dumpsToDir says whether db's dumps go into a folder.
func (m *Manager) dumpsToDir(db database) (dirDumper, bool) {
	d, ok := db.(dirDumper)
	return d, ok && m.opts.DumpFormat != FormatStream && d.canDumpDir()
}

// backupDatabaseDir dumps db into the backup's database folder at level
// (0: uncompressed). Each file is hashed as soon as the dump closes it
// (inotify), while the dump goes on, and checked whole on the way: a
// compressed file is decompressed, a table's uncompressed data must end
// with COPY's end marker, so a truncated or damaged file fails here. At
// the end pg_restore reads the table of contents, and every table's data
// must be there. Nothing is held in memory.
func (m *Manager) backupDatabaseDir(ctx context.Context, dir string, db database, dd dirDumper, level int, progress ports.Progress) ([]Part, error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	target := filepath.Join(dir, partDatabaseDir)
	if err := os.Mkdir(target, 0o700); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("database: pg_dump -Fd -j %d -Z %d of %s", m.opts.Jobs, level, db.name()))
	h := newDirHasher(target, m.opts.Jobs)
	if err := h.watch(); err != nil {
		// The watch only reads files while the dump goes on; without one
		// (inotify's per-user limits reached) finish reads them all.
		m.log.Warn().Err(err).Msg("backup: no inotify watch on the dump folder; its files are read back once the dump ends")
		progress("database: files read back once the dump ends (" + err.Error() + ")")
	}
	stop := m.reportSize("database", &h.n, progress)
	err := dd.dumpDir(ctx, target, m.opts.Jobs, level)
	h.close()
	stop()
	if err != nil {
		if strings.Contains(err.Error(), "No space left on device") {
			return nil, fmt.Errorf("%w: %w", errNoSpace, err)
		}
		return nil, fmt.Errorf("database: %w", err)
	}
	// Files the watch missed, or that changed after their hash, are hashed
	// now.
	parts, err := h.finish(ctx)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	entries, err := dd.checkDir(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := allDataThere(entries, parts); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	var size int64
	for _, p := range parts {
		size += p.Size
	}
	how := ""
	if level == 0 {
		how = " (uncompressed)"
	}
	progress(fmt.Sprintf("database: %s in %d files dumped and read back whole%s", format.Bytes(size), len(parts), how))
	return parts, nil
}

// allDataThere checks that each table data entry of the table of contents
// (pg_restore -l: "3456; 0 16390 TABLE DATA public t owner") has its file
// in parts, compressed or not.
func allDataThere(toc string, parts []Part) error {
	have := map[string]bool{}
	for _, p := range parts {
		have[strings.TrimSuffix(strings.TrimPrefix(p.Name, partDatabaseDir+"/"), ".gz")] = true
	}
	var missing []string
	for line := range strings.Lines(toc) {
		// "<id>; <catalog oid> <oid> <type> <schema> <name> <owner>": the
		// type after the two oids, as a name may hold the same words.
		id, rest, ok := strings.Cut(line, ";")
		if f := strings.SplitN(strings.TrimSpace(rest), " ", 3); !ok || strings.HasPrefix(line, ";") || len(f) < 3 || !strings.HasPrefix(f[2], "TABLE DATA ") {
			continue
		}
		if !have[strings.TrimSpace(id)+".dat"] {
			missing = append(missing, strings.TrimSpace(line))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the dump has no data file for %d table(s) its table of contents lists: %s", len(missing), strings.Join(missing[:min(len(missing), 3)], "; "))
	}
	return nil
}

// dirHasher hashes the files of a folder as they are closed after writing.
type dirHasher struct {
	dir  string
	jobs int
	n    countingWriter

	ino   *os.File
	queue chan string
	wg    sync.WaitGroup

	mu     sync.Mutex
	hashed map[string]hashedFile
}

type hashedFile struct {
	part  Part
	mtime time.Time
	// ended: a table's data file ends with COPY's end marker.
	ended bool
}

func newDirHasher(dir string, jobs int) *dirHasher {
	return &dirHasher{dir: dir, jobs: max(jobs, 1), queue: make(chan string, 1024), hashed: map[string]hashedFile{}}
}

// watch starts the inotify watch and the hashing workers.
func (h *dirHasher) watch() error {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, h.dir, syscall.IN_CLOSE_WRITE); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("inotify: %w", err)
	}
	h.ino = os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	for range h.jobs {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for name := range h.queue {
				_ = h.hash(name, false)
			}
		}()
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(h.queue)
		buf := make([]byte, 64<<10)
		for {
			n, err := h.ino.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				off += syscall.SizeofInotifyEvent + int(ev.Len)
				if name != "" {
					h.queue <- name
				}
			}
		}
	}()
	return nil
}

// close stops the watch and waits for the files queued so far.
func (h *dirHasher) close() {
	if h.ino != nil {
		h.ino.Close()
	}
	h.wg.Wait()
}

// hash reads one file whole: SHA-256, size, for gzip files a full
// decompression (its CRC and length trailer prove the file complete), and
// for an uncompressed table's data whether it ends with COPY's end marker
// (finish checks the markers across the dump). A file that is hashed already with the same size and time is skipped (the
// dump closes each file twice). While the dump runs, a failure only means
// the file is not finished: finish hashes it again and then fails.
func (h *dirHasher) hash(name string, final bool) error {
	path := filepath.Join(h.dir, name)
	if fi, err := os.Stat(path); err == nil {
		h.mu.Lock()
		got, ok := h.hashed[name]
		h.mu.Unlock()
		if ok && got.part.Size == fi.Size() && got.mtime.Equal(fi.ModTime()) {
			return nil
		}
	}
	p, err := hashFile(path, &h.n)
	if err != nil {
		if final {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	p.part.Name = partDatabaseDir + "/" + name
	h.mu.Lock()
	h.hashed[name] = p
	h.mu.Unlock()
	return nil
}

func hashFile(path string, n io.Writer) (hashedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return hashedFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return hashedFile{}, err
	}
	sum := sha256.New()
	tail := &tailWriter{}
	r := io.TeeReader(io.TeeReader(io.TeeReader(f, sum), n), tail)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return hashedFile{}, fmt.Errorf("not a whole gzip file: %w", err)
		}
		if _, err := io.Copy(io.Discard, gz); err != nil {
			return hashedFile{}, fmt.Errorf("does not decompress whole: %w", err)
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return hashedFile{}, err
	}
	fi2, err := f.Stat()
	if err != nil {
		return hashedFile{}, err
	}
	if fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return hashedFile{}, errors.New("changed while being read")
	}
	return hashedFile{
		part:  Part{Size: fi.Size(), SHA256: hex.EncodeToString(sum.Sum(nil))},
		mtime: fi.ModTime(),
		ended: isTableData(filepath.Base(path)) && bytes.HasSuffix(tail.b, copyEnd),
	}, nil
}

// copyEnd ends every table's data in a dump (pg_dump's dumpTableData_copy).
var copyEnd = []byte("\\.\n\n\n")

// allEnded checks COPY's end marker across a dump's uncompressed table
// data files: where pg_dump writes it, a file without it was cut short.
// The marker is not part of pg_dump's documented format, so a dump in
// which no file has it is taken to come from a pg_dump that writes none
// (its exit status and the table of contents vouch for it then). COPY's
// text format escapes a backslash in a value, so no row can end a file
// with the marker by chance.
func allEnded(files map[string]hashedFile) error {
	var with int
	var without []string
	for name, f := range files {
		switch {
		case !isTableData(name):
		case f.ended:
			with++
		default:
			without = append(without, name)
		}
	}
	if with == 0 || len(without) == 0 {
		return nil
	}
	slices.Sort(without)
	return fmt.Errorf("%s: does not end with the end of a table's data, as the dump's other %d tables do (truncated)", without[0], with)
}

// isTableData: "3456.dat", a table's uncompressed data in a folder dump
// (not toc.dat, not large objects' blob_N.dat).
func isTableData(name string) bool {
	id, ok := strings.CutSuffix(name, ".dat")
	return ok && id != "" && strings.Trim(id, "0123456789") == ""
}

// tailWriter keeps the last bytes written through it.
type tailWriter struct{ b []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p[max(0, len(p)-len(copyEnd)):]...)
	t.b = t.b[max(0, len(t.b)-len(copyEnd)):]
	return len(p), nil
}

// finish hashes what the watch missed or what changed after its hash, and
// returns the parts sorted by name.
func (h *dirHasher) finish(ctx context.Context) ([]Part, error) {
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		return nil, err
	}
	var parts []Part
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("unexpected %s in the dump folder", e.Name())
		}
		if err := h.hash(e.Name(), true); err != nil {
			return nil, err
		}
		parts = append(parts, h.hashed[e.Name()].part)
	}
	if len(parts) == 0 {
		return nil, errors.New("the dump folder is empty")
	}
	if err := allEnded(h.hashed); err != nil {
		return nil, err
	}
	slices.SortFunc(parts, func(a, b Part) int { return strings.Compare(a.Name, b.Name) })
	return parts, nil
}

// keptLevel is the compression level of a dump as it is kept.
func (m *Manager) keptLevel() int {
	if m.opts.Compress == CompressNever {
		return 0
	}
	return m.opts.CompressLevel
}

// dumpLevel is the compression level of a dump taken by Create, inside
// the downtime: uncompressed where the dump is compressed later and the
// destination has room for need (an uncompressed dump is about the
// database's size on the server) with a quarter to spare; free is what
// the destination has. Else the kept level.
func (m *Manager) dumpLevel(need, free int64) int {
	if m.opts.Compress == CompressAfter && free > 0 && need+need/4 <= free {
		return 0
	}
	return m.keptLevel()
}
