package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nocobot/nocobot/nbdata"
	"github.com/nocobot/nocobot/ports"
)

// NBDataOptions are the app's settings an exported .nbdata records (and
// that NocoBase compares with its own before restoring it).
type NBDataOptions struct {
	TablePrefix string
	Schema      string
	Underscored bool
	// Password encrypts the file as the Backup manager does ("" : not).
	Password string
}

// ExportNBData writes backup id of the destination dest as an .nbdata
// that NocoBase's Backup manager restores: the dump as it is (a -Fc file
// as "data", a folder dump as "data/…"; pg_restore reads both), the
// uploads and the app's aes_key.dat from the storage archive, and the
// metadata. The backup's checksums are checked first, and the file is
// read back whole afterwards.
func ExportNBData(ctx context.Context, dest, id, file string, o NBDataOptions) (*nbdata.Summary, error) {
	m := &Manager{opts: Options{Dest: dest}}
	man, dir, err := m.load(id)
	if err != nil {
		return nil, err
	}
	if h := man.holds(); h != "" {
		return nil, fmt.Errorf("backup %s holds %s", id, h)
	}
	if d := man.Database.Dialect; d != "" && d != "postgres" {
		return nil, fmt.Errorf("backup %s is of a %s database: only PostgreSQL backups are exported as .nbdata", id, d)
	}
	if !man.hasDatabaseDump() {
		return nil, fmt.Errorf("backup %s holds no dump (an in-server copy not exported yet): export it first", id)
	}
	if !man.hasPart(partStorage) {
		return nil, fmt.Errorf("backup %s holds no storage archive", id)
	}
	if err := verifyParts(ctx, dir, man); err != nil {
		return nil, fmt.Errorf("backup %s failed verification: %w", id, err)
	}
	if !strings.HasSuffix(file, nbdata.Extension) {
		return nil, fmt.Errorf("%s: an .nbdata file name must end in %s (NocoBase lists only those)", file, nbdata.Extension)
	}
	if _, err := os.Stat(file); err == nil {
		return nil, fmt.Errorf("%s exists already: name a new file", file)
	}
	src := nbdata.Source{
		Metadata: nbdata.Metadata{
			MetadataVersion:   nbdata.MetadataVersion,
			EnableFilesBackup: true,
			Version:           man.NocoBaseVersion,
			Description:       fmt.Sprintf("nocobot backup %s of cluster %s", id, man.Cluster),
			Database: nbdata.Database{
				Dialect: "postgres", Toolchain: "postgres",
				Underscored: o.Underscored, TablePrefix: o.TablePrefix, Schema: o.Schema,
				Version: "PostgreSQL " + man.Database.ServerVersion,
			},
			Plugins: []nbdata.Plugin{},
		},
	}
	if man.hasDirDump() {
		src.DataDir = filepath.Join(dir, partDatabaseDir)
		src.DataDirFiles = []string{}
		for _, p := range man.Parts {
			if name, ok := strings.CutPrefix(p.Name, partDatabaseDir+"/"); ok {
				src.DataDirFiles = append(src.DataDirFiles, name)
			}
		}
	} else {
		src.DataFile = filepath.Join(dir, partDatabase)
	}
	st, err := os.Open(filepath.Join(dir, partStorage))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	src.Storage = st
	if err := nbdata.Write(ctx, file, src, o.Password); err != nil {
		return nil, fmt.Errorf("writing %s: %w", file, err)
	}
	sum, err := nbdata.Inspect(ctx, file, o.Password, filepath.Dir(file))
	if err == nil {
		err = sum.Metadata.Check(nbdata.Target{Version: man.NocoBaseVersion, Dialect: "postgres", Underscored: o.Underscored, TablePrefix: o.TablePrefix, Schema: o.Schema})
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s does not read back: %w", file, err), sum.Close(), os.Remove(file))
	}
	return sum, nil
}

// withNBData adds the .nbdata files of Options.NBDataDir to a list,
// newest first among all.
func (m *Manager) withNBData(list []ports.BackupInfo) []ports.BackupInfo {
	if m.opts.NBDataDir == "" {
		return list
	}
	entries, err := os.ReadDir(m.opts.NBDataDir)
	if err != nil {
		return list
	}
	added := false
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), nbdata.Extension) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		file := filepath.Join(m.opts.NBDataDir, e.Name())
		meta, err := nbdata.ReadSidecar(file)
		info := ports.BackupInfo{ID: e.Name(), Cluster: m.opts.Cluster, Created: fi.ModTime(), Size: fi.Size(), Kind: KindNBData,
			Holds: "a NocoBase Backup manager file (maintain restore " + e.Name() + ")"}
		if err == nil {
			// Checked whole when it was copied here.
			info.Version, info.Verified = meta.Version, true
		}
		list = append(list, info)
		added = true
	}
	if added {
		slices.SortStableFunc(list, func(a, b ports.BackupInfo) int { return b.Created.Compare(a.Created) })
	}
	return list
}

// KindNBData is the kind of a NocoBase Backup manager file in a list.
const KindNBData = "nbdata"
