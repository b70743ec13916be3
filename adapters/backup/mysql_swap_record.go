package backup

// The swap's record on disk. A swap drops the views, triggers, routines
// and events of both databases before its RENAME TABLE, and their
// definitions exist nowhere else until they are loaded again: a process
// killed in between would lose them. So the swap first writes them, with
// what each database held, into a folder of the backup destination, synced,
// and removes that folder only once the swap is done or undone. The next
// restore reads it to settle what an interrupted one left (mysql_settle.go).
//
// The folder is per database and server (the destination may serve several
// clusters): <dest>/.nocobot-mysql-swap/<db>-<hash of the source>. The
// retention's scan looks only at folders named after the cluster, so it
// never sees it.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

const (
	swapRecordFile = "swap.json"
	swapLiveFile   = "live.sql"
	swapFreshFile  = "restored.sql"
)

// swapSide is what one database held when the swap began: its tables and
// the names of its other objects ("view x", "trigger y", "PROCEDURE z",
// "event e"), sorted.
type swapSide struct {
	Charset   string   `json:"charset"`
	Collation string   `json:"collation"`
	Tables    []string `json:"tables"`
	Objects   []string `json:"objects"`
}

// swapRecord says which swap is under way; the definitions are beside it
// in live.sql and restored.sql.
type swapRecord struct {
	Format   int      `json:"format"`
	Source   string   `json:"source"`
	Target   string   `json:"target"`
	Fresh    string   `json:"fresh"`
	Old      string   `json:"old"`
	Live     swapSide `json:"live"`
	Restored swapSide `json:"restored"`

	liveScript, restoredScript []byte
}

var plainDBName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// mysqlSwapDir is the record's folder for database db at source src.
func mysqlSwapDir(dest, db, src string) string {
	sum := sha256.Sum256([]byte(src))
	name := db
	if !plainDBName.MatchString(db) {
		name = hex.EncodeToString([]byte(db))
	}
	return filepath.Join(dest, ".nocobot-mysql-swap", name+"-"+hex.EncodeToString(sum[:4]))
}

// names lists o's objects other than tables, as swapSide.Objects does.
func (o objects) names() []string {
	var n []string
	for _, v := range o.views {
		n = append(n, "view "+v)
	}
	for _, t := range o.triggers {
		n = append(n, "trigger "+t)
	}
	for _, r := range o.routines {
		n = append(n, r[0]+" "+r[1])
	}
	for _, e := range o.events {
		n = append(n, "event "+e)
	}
	slices.Sort(n)
	return n
}

func (o objects) side() swapSide {
	return swapSide{Charset: o.charset, Collation: o.collation, Tables: o.tables, Objects: o.names()}
}

// writeSwapRecord writes the record and both scripts, synced, the record
// last: a folder without swap.json holds nothing a swap depends on.
func writeSwapRecord(dir string, rec swapRecord) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{swapLiveFile, rec.liveScript}, {swapFreshFile, rec.restoredScript}, {swapRecordFile, js}} {
		if err := writeSynced(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Sync(), f.Close())
}

// readSwapRecord returns the record in dir, or nil when there is none.
func readSwapRecord(dir string) (*swapRecord, error) {
	js, err := os.ReadFile(filepath.Join(dir, swapRecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec swapRecord
	if err := json.Unmarshal(js, &rec); err != nil || rec.Format != 1 {
		return nil, fmt.Errorf("%s is damaged", filepath.Join(dir, swapRecordFile))
	}
	if rec.liveScript, err = os.ReadFile(filepath.Join(dir, swapLiveFile)); err != nil {
		return nil, err
	}
	if rec.restoredScript, err = os.ReadFile(filepath.Join(dir, swapFreshFile)); err != nil {
		return nil, err
	}
	return &rec, nil
}

// removeSwapRecord removes the record first, then the rest of the folder.
func removeSwapRecord(dir string) error {
	if err := os.Remove(filepath.Join(dir, swapRecordFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(dir)
}

// sameNames compares two sorted name lists, nil and empty alike.
func sameNames(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
