package backup

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// Part names in a backup folder.
const (
	partDatabase = "database.dump"
	partStorage  = "storage.tar"
	manifestName = "manifest.json"
)

// Manifest describes one backup; it is written as manifest.json beside the
// parts.
type Manifest struct {
	Format          int       `json:"format"`
	ID              string    `json:"id"`
	Cluster         string    `json:"cluster"`
	RunID           string    `json:"run_id,omitempty"`
	NocoBaseVersion string    `json:"nocobase_version,omitempty"`
	Image           string    `json:"image,omitempty"`
	Created         time.Time `json:"created"`
	// Seconds is how long the backup took.
	Seconds  float64      `json:"seconds"`
	Database DatabaseInfo `json:"database"`
	Storage  StorageInfo  `json:"storage"`
	Parts    []Part       `json:"parts"`
	Verified bool         `json:"verified"`
	// Kind is KindCopy or KindDump ("" in backups of older versions: a
	// dump).
	Kind string `json:"kind,omitempty"`
	// StoragePending: a restore swapped the in-server copy in and has not
	// yet put the storage back; restoring the backup again finishes that
	// restore (storage only).
	StoragePending bool `json:"storage_pending,omitempty"`
	// ExtrasPending: a restore swapped the in-server copy in and has not
	// yet put the extra parts back; restoring the backup again does that
	// (after the storage, if that is pending too).
	ExtrasPending bool `json:"extras_pending,omitempty"`
	// Extras are the further parts (extras.go), with what each holds.
	Extras []ExtraRecord `json:"extras,omitempty"`
}

// DatabaseInfo says where the dump comes from.
type DatabaseInfo struct {
	Dialect       string `json:"dialect"`
	Name          string `json:"name"`
	ServerVersion string `json:"server_version"`
	Source        string `json:"source"` // container or host/db, no secrets
	// ExcludedSchemas were left out of the dump (nocobot's own).
	ExcludedSchemas []string `json:"excluded_schemas,omitempty"`
	// Copy is the in-server copy's database name (KindCopy), with its
	// signature (relations and columns; older backups: sizes and row
	// estimates). CopyGone is set once it was dropped or swapped in.
	Copy          string `json:"copy,omitempty"`
	CopySignature string `json:"copy_signature,omitempty"`
	CopyGone      bool   `json:"copy_gone,omitempty"`
	// CopyOpened: Export opened the copy to connections to dump it (a
	// copy is kept closed, so that no session can change it).
	CopyOpened bool `json:"copy_opened,omitempty"`
	// SwapPending is the name a restore is renaming the database to while
	// it swaps the copy in: written before the renames, so that a restore
	// killed around them can tell afterwards whether they happened.
	SwapPending string `json:"swap_pending,omitempty"`
	// SwappedIn is set once a restore made the copy the database: the
	// backup then holds no database any more (unless it was exported).
	SwappedIn bool `json:"swapped_in,omitempty"`
}

// liveCopy is the backup's in-server copy, if it still exists.
func (m *Manifest) liveCopy() string {
	if m.Database.CopyGone {
		return ""
	}
	return m.Database.Copy
}

// hasDatabaseDump says whether the backup holds a dump: one stream
// (database.dump) or a folder (database/…).
func (m *Manifest) hasDatabaseDump() bool {
	return m.hasPart(partDatabase) || m.hasDirDump()
}

// plainTableData are the indexes in Parts of a folder dump's uncompressed
// table data files (written so inside the downtime, compressed later).
func (m *Manifest) plainTableData() []int {
	var plain []int
	for i, p := range m.Parts {
		if name, ok := strings.CutPrefix(p.Name, partDatabaseDir+"/"); ok && isTableData(name) {
			plain = append(plain, i)
		}
	}
	return plain
}

func (m *Manifest) hasDirDump() bool {
	return slices.ContainsFunc(m.Parts, func(p Part) bool { return strings.HasPrefix(p.Name, partDatabaseDir+"/") })
}

func (m *Manifest) hasPart(name string) bool {
	return slices.ContainsFunc(m.Parts, func(p Part) bool { return p.Name == name })
}

// StorageInfo says where the storage archive comes from.
type StorageInfo struct {
	Source   string   `json:"source"`
	Excludes []string `json:"excludes"`
	Files    int64    `json:"files"`
}

// Part is one file of a backup.
type Part struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Size is the sum of the parts' sizes.
func (m *Manifest) Size() int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.Size
	}
	return n
}

func (m *Manifest) info() ports.BackupInfo {
	var extras []string
	for _, x := range m.Extras {
		extras = append(extras, x.Summary)
	}
	return ports.BackupInfo{
		ID: m.ID, Cluster: m.Cluster, Version: m.NocoBaseVersion, Image: m.Image,
		Created: m.Created, Size: m.Size(), Verified: m.Verified, RunID: m.RunID, Kind: cmp.Or(m.Kind, KindDump),
		Holds:  m.holds(),
		Extras: extras,
	}
}

// holds says what a backup still holds when it is not all of it ("" when
// it is): a swapped-in copy is the database now.
func (m *Manifest) holds() string {
	if m.hasDatabaseDump() || m.liveCopy() != "" {
		return ""
	}
	if m.StoragePending {
		return "storage only, and a restore of it is unfinished: its in-server copy is the database now; restore it again to put the storage back"
	}
	if m.ExtrasPending {
		return "storage only, and a restore of it is unfinished: its in-server copy is the database now and the storage is back; restore it again to put back " + m.extraParts()
	}
	if m.Database.SwappedIn {
		return "storage only: its in-server copy was swapped in by a restore (it is the database now) and never exported"
	}
	if m.Database.Copy != "" {
		return "storage only: its in-server copy is gone and it was never exported"
	}
	return ""
}

// extraParts names the backup's extra parts.
func (m *Manifest) extraParts() string {
	var names []string
	for _, x := range m.Extras {
		names = append(names, x.Part)
	}
	return strings.Join(names, ", ")
}

func writeManifest(dir string, man *Manifest) error {
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, manifestName)); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	_ = syncDir(dir) // make the rename durable
	return nil
}

// syncDir makes the renames and new names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// load reads a backup's manifest.
func (m *Manager) load(id string) (*Manifest, string, error) {
	if !idPattern.MatchString(id) {
		return nil, "", fmt.Errorf("backup id %q is not valid", id)
	}
	dir := filepath.Join(m.opts.Dest, id)
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dir); derr == nil {
			return nil, "", fmt.Errorf("backup %s is incomplete (no manifest): it failed or is still being taken", id)
		}
		return nil, "", fmt.Errorf("backup %s not found in %s", id, m.opts.Dest)
	}
	if err != nil {
		return nil, "", fmt.Errorf("backup %s: %w", id, err)
	}
	var man Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, "", fmt.Errorf("backup %s: damaged manifest: %w", id, err)
	}
	if man.ID != id || man.Format != 1 {
		return nil, "", fmt.Errorf("backup %s: the manifest does not belong to this folder", id)
	}
	return &man, dir, nil
}
