// Package bolt is the embedded store: one file, no server, written with
// go.etcd.io/bbolt. Every write is committed with fsync before it returns,
// so a kill -9 loses no recorded transition. The file is locked while
// open: two processes cannot share it (use the PostgreSQL store for
// replicas).
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
	bbolt "go.etcd.io/bbolt"

	"github.com/nocobot/nocobot/store"
)

var (
	bucketRuns      = []byte("runs")       // id → Run JSON
	bucketByCreated = []byte("by-created") // created nanos ‖ id → nil
	bucketActive    = []byte("active")     // cluster → id of its unfinished run
	bucketDecisions = []byte("decisions")  // run id ‖ 0 ‖ seq → Decision JSON
	bucketAudit     = []byte("audit")      // seq → AuditEntry JSON
	bucketWindows   = []byte("windows")    // id → Window JSON
	bucketNotes     = []byte("notes")      // scope ‖ 0 ‖ key → value
)

// Store is the embedded store.
type Store struct {
	db  *bbolt.DB
	log zerolog.Logger

	mu       sync.Mutex
	watchers map[chan string]struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path.
func Open(path string, log zerolog.Logger) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: the file is in use by another process (one nocobot per embedded store; use the PostgreSQL store for replicas)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, log: log, watchers: map[chan string]struct{}{}}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketRuns, bucketByCreated, bucketActive, bucketDecisions, bucketAudit, bucketWindows, bucketNotes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// The file lock means no other process can own a run: whatever
		// owner is recorded died with its process.
		runs := tx.Bucket(bucketRuns)
		return tx.Bucket(bucketActive).ForEach(func(_, id []byte) error {
			var r store.Run
			if err := getJSON(runs, id, &r); err != nil {
				return err
			}
			if r.Owner == "" {
				return nil
			}
			r.Owner, r.LeaseUntil = "", time.Time{}
			return putJSON(runs, id, r)
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func getJSON(b *bbolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return store.ErrNotFound
	}
	return json.Unmarshal(data, v)
}

func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

func createdKey(r store.Run) []byte {
	k := seqKey(uint64(r.Created.UnixNano()))
	return append(k, r.ID...)
}

// CreateRun implements store.Store.
func (s *Store) CreateRun(_ context.Context, r store.Run) (store.Run, error) {
	var busy store.Run
	err := s.db.Update(func(tx *bbolt.Tx) error {
		runs, active := tx.Bucket(bucketRuns), tx.Bucket(bucketActive)
		if id := active.Get([]byte(r.Cluster)); id != nil {
			if err := getJSON(runs, id, &busy); err != nil {
				return err
			}
			if !busy.State.Finished() {
				return store.ErrClusterBusy
			}
		}
		if runs.Get([]byte(r.ID)) != nil {
			return fmt.Errorf("run %s: %w", r.ID, store.ErrExists)
		}
		if err := putJSON(runs, []byte(r.ID), r); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByCreated).Put(createdKey(r), nil); err != nil {
			return err
		}
		if r.State.Finished() {
			return nil
		}
		return active.Put([]byte(r.Cluster), []byte(r.ID))
	})
	if errors.Is(err, store.ErrClusterBusy) {
		return busy, err
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("create run: %w", err)
	}
	return r, nil
}

func leaseLive(r store.Run, owner string, now time.Time) bool {
	return r.Owner != "" && r.Owner != owner && now.Before(r.LeaseUntil)
}

// UpdateRun implements store.Store.
func (s *Store) UpdateRun(_ context.Context, r store.Run) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		var old store.Run
		if err := getJSON(runs, []byte(r.ID), &old); err != nil {
			return err
		}
		if leaseLive(old, r.Owner, time.Now()) {
			return store.ErrNotOwner
		}
		if err := putJSON(runs, []byte(r.ID), r); err != nil {
			return err
		}
		if r.State.Finished() {
			active := tx.Bucket(bucketActive)
			if bytes.Equal(active.Get([]byte(r.Cluster)), []byte(r.ID)) {
				return active.Delete([]byte(r.Cluster))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	return nil
}

// GetRun implements store.Store.
func (s *Store) GetRun(_ context.Context, id string) (store.Run, error) {
	var r store.Run
	err := s.db.View(func(tx *bbolt.Tx) error { return getJSON(tx.Bucket(bucketRuns), []byte(id), &r) })
	if err != nil {
		return store.Run{}, fmt.Errorf("run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns implements store.Store.
func (s *Store) ListRuns(_ context.Context, cluster string, limit int) ([]store.Run, error) {
	var out []store.Run
	err := s.db.View(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		c := tx.Bucket(bucketByCreated).Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			var r store.Run
			if err := getJSON(runs, k[8:], &r); err != nil {
				return err
			}
			if cluster != "" && r.Cluster != cluster {
				continue
			}
			out = append(out, r)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// ActiveRun implements store.Store.
func (s *Store) ActiveRun(_ context.Context, cluster string) (store.Run, error) {
	var r store.Run
	err := s.db.View(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucketActive).Get([]byte(cluster))
		if id == nil {
			return store.ErrNotFound
		}
		return getJSON(tx.Bucket(bucketRuns), id, &r)
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("active run of %s: %w", cluster, err)
	}
	return r, nil
}

// UnfinishedRuns implements store.Store.
func (s *Store) UnfinishedRuns(_ context.Context) ([]store.Run, error) {
	var out []store.Run
	err := s.db.View(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		return tx.Bucket(bucketActive).ForEach(func(_, id []byte) error {
			var r store.Run
			if err := getJSON(runs, id, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("unfinished runs: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// ClaimRun implements store.Store.
func (s *Store) ClaimRun(_ context.Context, id, owner string, until time.Time) (store.Run, error) {
	var r store.Run
	err := s.db.Update(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		if err := getJSON(runs, []byte(id), &r); err != nil {
			return err
		}
		if leaseLive(r, owner, time.Now()) {
			return store.ErrNotOwner
		}
		r.Owner, r.LeaseUntil = owner, until
		return putJSON(runs, []byte(id), r)
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("claim run %s: %w", id, err)
	}
	return r, nil
}

// ReleaseRun implements store.Store.
func (s *Store) ReleaseRun(_ context.Context, id, owner string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		var r store.Run
		if err := getJSON(runs, []byte(id), &r); err != nil {
			return err
		}
		if r.Owner != owner {
			return nil
		}
		r.Owner, r.LeaseUntil = "", time.Time{}
		return putJSON(runs, []byte(id), r)
	})
	if err != nil {
		return fmt.Errorf("release run %s: %w", id, err)
	}
	return nil
}

func decisionPrefix(runID string) []byte { return append([]byte(runID), 0) }

// Decide implements store.Store.
func (s *Store) Decide(_ context.Context, d store.Decision) (store.Decision, error) {
	var existing store.Decision
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDecisions)
		prefix := decisionPrefix(d.RunID)
		c := b.Cursor()
		n := uint64(0)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			n++
			var old store.Decision
			if err := json.Unmarshal(v, &old); err != nil {
				return err
			}
			if old.Checkpoint == d.Checkpoint {
				existing = old
				return store.ErrAlreadyDecided
			}
		}
		return putJSON(b, append(prefix, seqKey(n)...), d)
	})
	if errors.Is(err, store.ErrAlreadyDecided) {
		return existing, err
	}
	if err != nil {
		return store.Decision{}, fmt.Errorf("record decision on %s: %w", d.RunID, err)
	}
	s.notify(d.RunID)
	return d, nil
}

// Decisions implements store.Store.
func (s *Store) Decisions(_ context.Context, runID string) ([]store.Decision, error) {
	var out []store.Decision
	err := s.db.View(func(tx *bbolt.Tx) error {
		prefix := decisionPrefix(runID)
		c := tx.Bucket(bucketDecisions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var d store.Decision
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decisions of %s: %w", runID, err)
	}
	return out, nil
}

// WatchDecisions implements store.Store. Only this process writes the
// file, so an in-memory broadcast sees every decision.
func (s *Store) WatchDecisions(ctx context.Context) (<-chan string, error) {
	ch := make(chan string, 64)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
		close(ch)
	}()
	return ch, nil
}

func (s *Store) notify(runID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.watchers {
		select {
		case ch <- runID:
		default:
			// A watcher that fell behind still polls; dropping one wake-up
			// delays it, never loses the decision, which is in the file.
		}
	}
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(_ context.Context, e store.AuditEntry) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.ID = int64(n)
		return putJSON(b, seqKey(n), e)
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// Audit implements store.Store.
func (s *Store) Audit(_ context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e store.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if !q.Since.IsZero() && e.At.Before(q.Since) {
				break // entries are appended in time order
			}
			if q.RunID != "" && e.RunID != q.RunID {
				continue
			}
			out = append(out, e)
			if q.Limit > 0 && len(out) == q.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}

// PruneAudit implements store.Store.
func (s *Store) PruneAudit(_ context.Context, before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var e store.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if !e.At.Before(before) {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return n, nil
}

// PutWindow implements store.Store.
func (s *Store) PutWindow(_ context.Context, w store.Window) error {
	err := s.db.Update(func(tx *bbolt.Tx) error { return putJSON(tx.Bucket(bucketWindows), []byte(w.ID), w) })
	if err != nil {
		return fmt.Errorf("save window %s: %w", w.ID, err)
	}
	return nil
}

// GetWindow implements store.Store.
func (s *Store) GetWindow(_ context.Context, id string) (store.Window, error) {
	var w store.Window
	err := s.db.View(func(tx *bbolt.Tx) error { return getJSON(tx.Bucket(bucketWindows), []byte(id), &w) })
	if err != nil {
		return store.Window{}, fmt.Errorf("window %s: %w", id, err)
	}
	return w, nil
}

// ListWindows implements store.Store.
func (s *Store) ListWindows(_ context.Context) ([]store.Window, error) {
	var out []store.Window
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketWindows).ForEach(func(_, v []byte) error {
			var w store.Window
			if err := json.Unmarshal(v, &w); err != nil {
				return err
			}
			out = append(out, w)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list windows: %w", err)
	}
	return out, nil
}

// DeleteWindow implements store.Store.
func (s *Store) DeleteWindow(_ context.Context, id string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketWindows)
		if b.Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete window %s: %w", id, err)
	}
	return nil
}

// AdvanceWindow implements store.Store.
func (s *Store) AdvanceWindow(_ context.Context, id string, from, to time.Time) (bool, error) {
	won := false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketWindows)
		var w store.Window
		if err := getJSON(b, []byte(id), &w); err != nil {
			return err
		}
		if !w.NextStart.Equal(from) {
			return nil
		}
		w.NextStart = to
		won = true
		return putJSON(b, []byte(id), w)
	})
	if err != nil {
		return false, fmt.Errorf("advance window %s: %w", id, err)
	}
	return won, nil
}

func noteKey(scope, key string) []byte { return []byte(scope + "\x00" + key) }

// PutNote implements store.Store.
func (s *Store) PutNote(_ context.Context, scope, key, value string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNotes).Put(noteKey(scope, key), []byte(value))
	})
	if err != nil {
		return fmt.Errorf("save note %s/%s: %w", scope, key, err)
	}
	return nil
}

// GetNote implements store.Store.
func (s *Store) GetNote(_ context.Context, scope, key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketNotes).Get(noteKey(scope, key))
		if b == nil {
			return store.ErrNotFound
		}
		v = string(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("note %s/%s: %w", scope, key, err)
	}
	return v, nil
}
