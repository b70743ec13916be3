package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// dataFiles lists a backup folder's table data files by suffix.
func dataFiles(t *testing.T, dir string) (plain, gz []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, partDatabaseDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch {
		case isTableData(e.Name()):
			plain = append(plain, e.Name())
		case strings.HasSuffix(e.Name(), ".gz") && isTableData(strings.TrimSuffix(e.Name(), ".gz")):
			gz = append(gz, e.Name())
		case e.Name() != "toc.dat":
			t.Errorf("unexpected file %s in the dump folder", e.Name())
		}
	}
	return plain, gz
}

// A dump taken inside the downtime is written uncompressed and checked
// whole; once traffic is back, Export compresses it, the manifest names
// the compressed files, the plain ones are gone, and it restores the
// rows exactly.
func TestDumpCompressedAfterTrafficIsBack(t *testing.T) {
	f := newFixture(t, 5, 2000)
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	progress := &lines{}
	info := create(t, m, progress)
	dir := filepath.Join(f.dest, info.ID)
	plain, gz := dataFiles(t, dir)
	tables := len(plain)
	if tables < 5 || len(gz) != 0 {
		t.Fatalf("inside the downtime: plain %v, compressed %v; want every table's file uncompressed", plain, gz)
	}
	if !strings.Contains(progress.String(), "-Z 0") || !strings.Contains(progress.String(), "compressed once traffic is back") {
		t.Errorf("progress does not say the dump is uncompressed for now: %s", progress)
	}
	before := dbSnapshot(t, f.dbURL)

	progress = &lines{}
	ctx := context.Background()
	out, err := m.Export(ctx, info.ID, progress.add)
	if err != nil {
		t.Fatal(err)
	}
	if out.Size >= info.Size {
		t.Errorf("size after compression %d, before %d", out.Size, info.Size)
	}
	if !strings.Contains(progress.String(), "compressed at level 1") {
		t.Errorf("progress = %s", progress)
	}
	plain, gz = dataFiles(t, dir)
	if len(plain) != 0 || len(gz) != tables {
		t.Fatalf("after Export: plain %v, compressed %v", plain, gz)
	}
	man := readManifest(t, f.dest, info.ID)
	for _, p := range man.Parts {
		if strings.HasSuffix(p.Name, ".dat") && p.Name != partDatabaseDir+"/toc.dat" {
			t.Errorf("the manifest still names %s", p.Name)
		}
	}
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	// A second Export has nothing left to do.
	progress = &lines{}
	if _, err := m.Export(ctx, info.ID, progress.add); err != nil || progress.String() != "" {
		t.Errorf("second Export: %v, progress %q", err, progress.String())
	}

	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database restored from the compressed dump", before, dbSnapshot(t, f.dbURL))
}

// A real uncompressed dump: its table files all end with COPY's marker
// and pass; without any marker (as from a pg_dump that writes none) the
// dump passes too; one file without it among the others is refused,
// named.
func TestEndMarkersAcrossARealDump(t *testing.T) {
	f := newFixture(t, 4, 500)
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info := create(t, m, &lines{})
	src := filepath.Join(f.dest, info.ID, partDatabaseDir)
	plain, _ := dataFiles(t, filepath.Join(f.dest, info.ID))
	if len(plain) < 4 {
		t.Fatalf("table files %v", plain)
	}
	check := func(strip func(name string) bool) error {
		dir := t.TempDir()
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if isTableData(e.Name()) && strip(e.Name()) {
				cut, ok := bytes.CutSuffix(b, copyEnd)
				if !ok {
					t.Fatalf("%s from pg_dump does not end with the marker", e.Name())
				}
				b = cut
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		h := newDirHasher(dir, 1)
		_, err = h.finish(context.Background())
		return err
	}
	if err := check(func(string) bool { return false }); err != nil {
		t.Errorf("the dump as written: %v", err)
	}
	if err := check(func(string) bool { return true }); err != nil {
		t.Errorf("no table file with a marker: %v", err)
	}
	if err := check(func(n string) bool { return n == plain[1] }); err == nil || !strings.Contains(err.Error(), plain[1]+": does not end") {
		t.Errorf("one file cut short: %v", err)
	}
}

// A dump a rolled-back or aborted run left uncompressed (it never reached
// its Export step) is compressed by the next run's Export, once traffic is
// back, and still restores the rows exactly; a backup an unfinished run
// needs is left as it is.
func TestExportCompressesDumpsLeftUncompressed(t *testing.T) {
	f := newFixture(t, 3, 500)
	opts := f.localOptions(t)
	protected := map[string]bool{}
	opts.Protect = func(context.Context) (map[string]bool, error) { return protected, nil }
	m, err := New(opts, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	left := create(t, m, nil)   // its run was rolled back: never exported
	needed := create(t, m, nil) // an unfinished run's
	protected[needed.ID] = true
	before := dbSnapshot(t, f.dbURL)
	current := create(t, m, nil)

	progress := &lines{}
	if _, err := m.Export(ctx, current.ID, progress.add); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "backup "+left.ID+" was left uncompressed by an earlier run") {
		t.Errorf("progress does not name the leftover: %s", progress)
	}
	for _, c := range []struct {
		id         string
		compressed bool
	}{{left.ID, true}, {current.ID, true}, {needed.ID, false}} {
		plain, gz := dataFiles(t, filepath.Join(f.dest, c.id))
		if c.compressed && (len(plain) != 0 || len(gz) < 3) || !c.compressed && (len(plain) < 3 || len(gz) != 0) {
			t.Errorf("%s: plain %v, compressed %v; want compressed %v", c.id, plain, gz, c.compressed)
		}
	}
	if _, err := m.Verify(ctx, left.ID); err != nil {
		t.Fatal(err)
	}
	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, left.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database restored from the leftover, compressed later", before, dbSnapshot(t, f.dbURL))
}

// A crash after the manifest named the compressed files but before the
// plain ones were removed leaves a folder that restores; the next Export
// removes the leftovers. A plain file changed since the dump is refused,
// and the backup stays as it was.
func TestCompressionCrashAndDamage(t *testing.T) {
	f := newFixture(t, 3, 500)
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	info := create(t, m, nil)
	dir := filepath.Join(f.dest, info.ID)
	before := dbSnapshot(t, f.dbURL)

	// Keep copies of the plain files, compress, and put them back as a
	// crash before their removal would have left them.
	plain, _ := dataFiles(t, dir)
	tables := len(plain)
	saved := map[string][]byte{}
	for _, p := range plain {
		b, err := os.ReadFile(filepath.Join(dir, partDatabaseDir, p))
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = b
	}
	if _, err := m.Export(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	for p, b := range saved {
		if err := os.WriteFile(filepath.Join(dir, partDatabaseDir, p), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	migrateAndChange(t, f.dbURL)
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatalf("restore with both plain and compressed files: %v", err)
	}
	assertSame(t, "database restored", before, dbSnapshot(t, f.dbURL))
	if _, err := m.Export(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	if plain, gz := dataFiles(t, dir); len(plain) != 0 || len(gz) != tables {
		t.Errorf("leftovers not removed: plain %v, compressed %v", plain, gz)
	}

	// Damage: a plain file that no longer has its checksum.
	info2 := create(t, m, nil)
	dir2 := filepath.Join(f.dest, info2.ID)
	plain, _ = dataFiles(t, dir2)
	p := filepath.Join(dir2, partDatabaseDir, plain[0])
	b, _ := os.ReadFile(p)
	b[0] ^= 0xff
	os.WriteFile(p, b, 0o600)
	manBefore := readManifest(t, f.dest, info2.ID)
	_, err = m.Export(ctx, info2.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "changed since it was taken") ||
		strings.Contains(err.Error(), "whole") || !strings.Contains(err.Error(), "no longer verifies") {
		t.Fatalf("Export of a damaged dump: %v; want it said that the backup no longer verifies", err)
	}
	if after := readManifest(t, f.dest, info2.ID); len(after.Parts) != len(manBefore.Parts) || after.Parts[0] != manBefore.Parts[0] {
		t.Errorf("the manifest changed after a failed compression")
	}
	if plain, gz := dataFiles(t, dir2); len(plain) != tables || len(gz) != 0 {
		t.Errorf("after a failed compression: plain %v, compressed %v", plain, gz)
	}
}

// "while" compresses inside the downtime; "never" keeps the dump plain.
func TestCompressWhileAndNever(t *testing.T) {
	f := newFixture(t, 2, 200)
	ctx := context.Background()
	for _, mode := range []string{CompressWhile, CompressNever} {
		o := f.localOptions(t)
		o.Compress = mode
		o.Dest = filepath.Join(f.dest, mode)
		m, err := New(o, nil, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		info := create(t, m, nil)
		if _, err := m.Export(ctx, info.ID, nil); err != nil {
			t.Fatal(err)
		}
		plain, gz := dataFiles(t, filepath.Join(o.Dest, info.ID))
		if mode == CompressWhile && (len(plain) != 0 || len(gz) < 2) || mode == CompressNever && (len(plain) < 2 || len(gz) != 0) {
			t.Errorf("%s: plain %v, compressed %v", mode, plain, gz)
		}
	}
	if _, err := New(Options{Cluster: "c", Dest: t.TempDir(), DBURL: f.dbURL, StorageHostPath: f.storage, Compress: "later"}, nil, testLog(t)); err == nil ||
		!strings.Contains(err.Error(), `compress "later"`) {
		t.Errorf("bad compress: %v", err)
	}
}

// Without room for the uncompressed dump, it is compressed while written.
func TestDumpLevelByRoom(t *testing.T) {
	m := &Manager{opts: Options{Compress: CompressAfter, CompressLevel: 3}}
	if l := m.dumpLevel(1000, 2000); l != 0 {
		t.Errorf("with room: level %d", l)
	}
	if l := m.dumpLevel(1000, 1100); l != 3 {
		t.Errorf("without room: level %d", l)
	}
	m.opts.Compress = CompressNever
	if l := m.dumpLevel(1000, 100); l != 0 {
		t.Errorf("never: level %d", l)
	}
}

// An uncompressed table file without COPY's end marker, in a dump whose
// other tables have it, is a truncated dump; a dump from a pg_dump that
// writes no marker at all is whole; a table of contents whose data file
// is missing is an incomplete one.
func TestPlainDumpChecks(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "3456.dat")
	os.WriteFile(whole, []byte("1\ta\n2\tb\n\\.\n\n\n"), 0o600)
	cut := filepath.Join(dir, "3457.dat")
	os.WriteFile(cut, []byte("1\ta\n2\tb\n"), 0o600)
	var n countingWriter
	files := map[string]hashedFile{}
	for _, p := range []string{whole, cut} {
		f, err := hashFile(p, &n)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = f
	}
	if !files["3456.dat"].ended || files["3457.dat"].ended {
		t.Errorf("end markers seen: %+v", files)
	}
	if err := allEnded(files); err == nil || !strings.Contains(err.Error(), "3457.dat") || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("a cut file among whole ones: %v", err)
	}
	delete(files, "3456.dat")
	files["toc.dat"] = hashedFile{}
	if err := allEnded(files); err != nil {
		t.Errorf("no file with a marker (a pg_dump that writes none): %v", err)
	}
	toc := ";\n; Archive created at …\n3456; 0 16390 TABLE DATA public a owner\n3457; 0 16391 TABLE DATA public b owner\n3300; 1259 16385 TABLE public a owner\n"
	if err := allDataThere(toc, []Part{{Name: "database/3456.dat"}, {Name: "database/3457.dat.gz"}}); err != nil {
		t.Error(err)
	}
	if err := allDataThere(toc, []Part{{Name: "database/3456.dat"}}); err == nil || !strings.Contains(err.Error(), "TABLE DATA public b") {
		t.Errorf("missing file: %v", err)
	}
	// Only the entry's type counts, not a name that holds the words.
	named := toc + "216; 1259 16399 TABLE public x TABLE DATA y owner\n3358; 0 0 COMMENT public TABLE \"x TABLE DATA y\" owner\n3348; 0 16399 TABLE DATA public x TABLE DATA y owner\n"
	if err := allDataThere(named, []Part{{Name: "database/3456.dat"}, {Name: "database/3457.dat.gz"}, {Name: "database/3348.dat"}}); err != nil {
		t.Errorf("a table named \"x TABLE DATA y\": %v", err)
	}
}

// Values that TOAST compresses make a dump far larger than the database:
// when the uncompressed dump does not fit after all, it is taken again,
// compressed, and the backup succeeds.
func TestUncompressedDumpThatDoesNotFit(t *testing.T) {
	f := newFixture(t, 2, 100)
	c := connect(t, f.dbURL)
	execSQL(t, c, `CREATE TABLE big_notes (id int PRIMARY KEY, body text);
INSERT INTO big_notes SELECT i, repeat('nocobase ', 200000) FROM generate_series(1, 40) i`)
	c.Close(context.Background())
	dest := smallDest(t, "48m")
	o := f.localOptions(t)
	o.Dest = dest
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	progress := &lines{}
	info := create(t, m, progress)
	if !strings.Contains(progress.String(), "no room for the uncompressed dump; dumping again, compressed") {
		t.Errorf("progress = %s", progress)
	}
	if plain, gz := dataFiles(t, filepath.Join(dest, info.ID)); len(plain) != 0 || len(gz) == 0 {
		t.Errorf("plain %v, compressed %v", plain, gz)
	}
	before := dbSnapshot(t, f.dbURL)
	migrateAndChange(t, f.dbURL)
	if err := m.Restore(context.Background(), info.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database restored", before, dbSnapshot(t, f.dbURL))
}

// An empty large object is a zero-byte file in an uncompressed folder
// dump (blob_N.dat): the backup verifies and restores before and after
// Export compresses it, with the large objects as they were.
func TestUncompressedDumpWithEmptyLargeObject(t *testing.T) {
	f := newFixture(t, 2, 100)
	c := connect(t, f.dbURL)
	execSQL(t, c, `SELECT lo_create(0); SELECT lo_from_bytea(0, 'nocobase')`)
	c.Close(context.Background())
	m, err := New(f.localOptions(t), nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	info := create(t, m, nil)
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Fatalf("verify the uncompressed dump: %v", err)
	}
	if _, err := m.Export(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Fatalf("verify after Export: %v", err)
	}
	c = connect(t, f.dbURL)
	execSQL(t, c, `SELECT lo_unlink(oid) FROM pg_largeobject_metadata`)
	c.Close(context.Background())
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatalf("restore: %v", err)
	}
	c = connect(t, f.dbURL)
	var n int
	var data string
	if err := c.QueryRow(ctx, `SELECT count(*), string_agg(convert_from(lo_get(oid), 'UTF8'), ',') FROM pg_largeobject_metadata`).Scan(&n, &data); err != nil {
		t.Fatal(err)
	}
	if n != 2 || data != ",nocobase" && data != "nocobase," {
		t.Errorf("large objects after restore: %d, %q; want the empty one and \"nocobase\"", n, data)
	}
}

// fullDiskStorage archives the storage slowly the first time, as docker
// cp from a busy engine does: after the first MiB it waits until the
// destination is full, so that the storage archive is still being
// written when the uncompressed dump fills the disk.
type fullDiskStorage struct {
	*localContainers
	dest   string
	copies atomic.Int32
}

func (s *fullDiskStorage) CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error) {
	rc, err := s.localContainers.CopyFrom(ctx, container, path)
	if err != nil || s.copies.Add(1) > 1 {
		return rc, err
	}
	return readCloser{Reader: &waitFull{r: rc, dest: s.dest}, close: rc.Close}, nil
}

type waitFull struct {
	r      io.Reader
	dest   string
	n      int
	waited bool
}

func (w *waitFull) Read(p []byte) (int, error) {
	if w.n >= 1<<20 && !w.waited {
		w.waited = true
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			var st syscall.Statfs_t
			if syscall.Statfs(w.dest, &st) == nil && int64(st.Bavail)*int64(st.Bsize) < 1<<20 {
				break
			}
		}
	}
	n, err := w.r.Read(p)
	w.n += n
	return n, err
}

// The uncompressed dump that fills the disk also cuts short the storage
// archive written beside it: both are taken again, the dump compressed,
// and the backup succeeds and restores.
func TestUncompressedDumpFillsTheDiskUnderTheStorage(t *testing.T) {
	f := newFixture(t, 2, 100)
	c := connect(t, f.dbURL)
	execSQL(t, c, `CREATE TABLE big_notes (id int PRIMARY KEY, body text);
INSERT INTO big_notes SELECT i, repeat('nocobase ', 200000) FROM generate_series(1, 40) i`)
	c.Close(context.Background())
	blob := make([]byte, 12<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.storage, "uploads", "video.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := smallDest(t, "48m")
	lc := &localContainers{folders: map[string]string{"app-1:/app/nocobase/storage": f.storage}}
	o := f.localOptions(t)
	o.Dest = dest
	o.StorageHostPath, o.StorageContainer = "", "app-1"
	m, err := New(o, &fullDiskStorage{localContainers: lc, dest: dest}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	progress := &lines{}
	info := create(t, m, progress)
	if !strings.Contains(progress.String(), "no room for the uncompressed dump") ||
		!strings.Contains(progress.String(), "taking both again, the dump compressed") {
		t.Errorf("progress = %s", progress)
	}
	ctx := context.Background()
	if _, err := m.Verify(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	before := dbSnapshot(t, f.dbURL)
	files := fileSnapshot(t, f.storage, DefaultExcludes)
	migrateAndChange(t, f.dbURL)
	changeStorage(t, f.storage)
	if err := m.Restore(ctx, info.ID, nil); err != nil {
		t.Fatal(err)
	}
	assertSame(t, "database restored", before, dbSnapshot(t, f.dbURL))
	assertSame(t, "storage restored", files, fileSnapshot(t, f.storage, DefaultExcludes))
}
