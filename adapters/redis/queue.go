package redis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// QueuePart is the backup part that holds the queue's pending jobs.
const QueuePart = "redis-queue.jsonl"

// queueHeader is the first line of a queue part.
type queueHeader struct {
	Format   int      `json:"format"`
	App      string   `json:"app"`
	Database string   `json:"database"` // redacted
	Patterns []string `json:"patterns"`
}

// queueEntry is one key: its name, DUMP payload and remaining time to
// live in milliseconds (0: none) when it was saved.
type queueEntry struct {
	Key   []byte `json:"k"`
	Value []byte `json:"v"`
	PTTL  int64  `json:"ttl,omitempty"`
}

// Queue is the queue's side of backups (the backup adapter's Extra).
type Queue struct{ m *Manager }

// Queue returns the Manager's queue part for backups.
func (m *Manager) Queue() Queue { return Queue{m} }

// Part is the file name of the part in a backup folder.
func (q Queue) Part() string { return QueuePart }

// queueTarget is the database of the queue, nil without one.
func (q Queue) queueTarget(ctx context.Context) (*target, error) {
	dbs, err := q.m.resolve(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(dbs, func(t *target) bool { return slices.Contains(t.roles, RoleQueue) })
	if i < 0 || len(q.m.patterns(RoleQueue)) == 0 {
		return nil, nil
	}
	return dbs[i], nil
}

// Active says whether the cluster keeps a queue in Redis: only then does
// a backup hold the part.
func (q Queue) Active(ctx context.Context) (bool, error) {
	t, err := q.queueTarget(ctx)
	return t != nil, err
}

// Save writes every queue key of the app (DUMP and PTTL) to w, meant for
// while every node is stopped, so that nothing changes meanwhile. It
// returns what it saved, for the manifest and the thread.
func (q Queue) Save(ctx context.Context, w io.Writer) (string, error) {
	m := q.m
	t, err := q.queueTarget(ctx)
	if err != nil || t == nil {
		return "", err
	}
	c, err := m.conn(ctx, t)
	if err != nil {
		return "", err
	}
	pats := m.patterns(RoleQueue)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(queueHeader{Format: 1, App: m.opts.App, Database: t.shown, Patterns: pats}); err != nil {
		return "", err
	}
	seen := map[string]bool{}
	n := 0
	err = m.scan(ctx, c, pats, func(keys []string) error {
		keys = slices.DeleteFunc(keys, func(k string) bool { return seen[k] })
		cctx, cancel := m.call(ctx)
		defer cancel()
		pipe := c.Pipeline()
		dumps := make([]*goredis.StringCmd, len(keys))
		ttls := make([]*goredis.Cmd, len(keys))
		for i, k := range keys {
			dumps[i] = pipe.Dump(cctx, k)
			ttls[i] = pipe.Do(cctx, "PTTL", k)
		}
		if _, err := pipe.Exec(cctx); err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("dump: %w", err)
		}
		for i, k := range keys {
			v, err := dumps[i].Result()
			if errors.Is(err, goredis.Nil) {
				continue // gone since the scan (expired)
			}
			if err != nil {
				return fmt.Errorf("dump %q: %w", k, err)
			}
			ttl, err := ttls[i].Int64()
			if err != nil {
				return fmt.Errorf("pttl %q: %w", k, err)
			}
			if ttl == -2 {
				continue
			}
			e := queueEntry{Key: []byte(k), Value: []byte(v)}
			if ttl > 0 {
				e.PTTL = ttl
			}
			if err := enc.Encode(e); err != nil {
				return err
			}
			seen[k] = true
			n++
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("redis queue %s: %w", describeTarget(t), err)
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	m.log.Info().Str("database", t.shown).Int("keys", n).Msg("redis queue saved")
	return fmt.Sprintf("Redis %s: %s saved (%s)", describeTarget(t), nkeys(n), strings.Join(pats, ", ")), nil
}

// Restore puts the queue back as the part saved it: the app's queue keys
// now are deleted (nothing queued since survives), then each saved key is
// restored with its saved time to live. Repeating it is safe: the part
// is read afresh.
func (q Queue) Restore(ctx context.Context, r io.Reader) (string, error) {
	m := q.m
	t, err := q.queueTarget(ctx)
	if err != nil {
		return "", err
	}
	br := bufio.NewReaderSize(r, 1<<20)
	dec := json.NewDecoder(br)
	var h queueHeader
	if err := dec.Decode(&h); err != nil || h.Format != 1 {
		return "", fmt.Errorf("redis queue part: not a queue part of this format (%v)", err)
	}
	if t == nil {
		return "", errors.New("the backup holds the Redis queue's jobs, but this cluster has no Redis queue now (QUEUE_ADAPTER_REDIS_URL or redis.databases): nothing restored there")
	}
	if h.App != m.opts.App {
		return "", fmt.Errorf("the backup's queue belongs to app %q, this cluster's is %q: nothing restored there", h.App, m.opts.App)
	}
	c, err := m.conn(ctx, t)
	if err != nil {
		return "", err
	}
	pats := append(m.patterns(RoleQueue), h.Patterns...)
	slices.Sort(pats)
	pats = slices.Compact(pats)
	dropped, err := m.deleteMatching(ctx, t, pats, func(string) bool { return false })
	if err != nil {
		return "", fmt.Errorf("redis queue %s: delete the newer jobs: %w", describeTarget(t), err)
	}
	n := 0
	batch := make([]queueEntry, 0, 100)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		cctx, cancel := m.call(ctx)
		defer cancel()
		pipe := c.Pipeline()
		for _, e := range batch {
			pipe.Do(cctx, "RESTORE", string(e.Key), e.PTTL, string(e.Value), "REPLACE")
		}
		cmds, err := pipe.Exec(cctx)
		for i, cmd := range cmds {
			if cmd.Err() != nil {
				return fmt.Errorf("restore %q: %w", batch[i].Key, cmd.Err())
			}
		}
		if err != nil {
			return err
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for {
		var e queueEntry
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("redis queue part: %w", err)
		}
		if batch = append(batch, e); len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return "", fmt.Errorf("redis queue %s: %w (a retry restores it whole)", describeTarget(t), err)
			}
		}
	}
	if err := flush(); err != nil {
		return "", fmt.Errorf("redis queue %s: %w (a retry restores it whole)", describeTarget(t), err)
	}
	m.log.Info().Str("database", t.shown).Int("restored", n).Int("dropped", dropped).Msg("redis queue restored")
	return fmt.Sprintf("Redis %s: the queue's %s deleted, the backup's %s put back", describeTarget(t), nkeys(dropped), nkeys(n)), nil
}
