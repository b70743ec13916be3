// Package redis handles the part of a NocoBase cluster's state that lives
// in Redis (docs/nocobase.md, "Redis"): the cache, derived from the
// database, is emptied while every node is stopped; locks and pub/sub
// signals left by stopped nodes are dropped then too; the queue's pending
// jobs are saved with each backup (DUMP and PTTL per key) and put back by
// its restore (RESTORE … REPLACE).
//
// The Redis databases are those the nodes' environment names
// (CACHE_REDIS_URL with CACHE_DEFAULT_STORE=redis, PUBSUB_ADAPTER_REDIS_URL,
// LOCK_ADAPTER_REDIS_URL, QUEUE_ADAPTER_REDIS_URL, REDIS_URL), or those the
// configuration names instead. Only the app's keys are touched: those that
// match the role's key patterns, which begin with the app's name. FLUSHDB
// is never sent: a database said to be NocoBase's alone (Whole) is checked
// for keys without the app's prefix, refused in one line if it holds any,
// and emptied key by key otherwise.
//
// Every call has a timeout; passwords in URLs never reach a message.
package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Role is what NocoBase keeps in a Redis database.
type Role string

// The roles, one per NocoBase adapter.
const (
	RoleCache    Role = "cache"    // built-in cache (CACHE_DEFAULT_STORE=redis)
	RoleQueue    Role = "queue"    // plugin-queue-adapter-redis
	RoleLock     Role = "lock"     // plugin-lock-adapter-redis
	RolePubSub   Role = "pubsub"   // plugin-pubsub-adapter-redis
	RoleWorkerID Role = "workerid" // plugin-workerid-allocator-redis
)

// Roles lists every role, in the order they are reported.
var Roles = []Role{RoleCache, RoleQueue, RoleLock, RolePubSub, RoleWorkerID}

// DefaultKeys are the key patterns of each role; "{app}" stands for the
// app's name. Only the cache's are confirmed in NocoBase's source
// (packages/core/cache: "<app>:<key>"); the others come from commercial
// plugins whose source is not public: the queue's and pub/sub's follow the
// channel names of packages/core/server (event-queue.ts,
// pub-sub-manager.ts: "<app>.<prefix>.<channel>"), the locks' are a guess,
// and worker ids are left alone unless configured (a node releases its id
// when it stops). See docs/nocobase.md.
var DefaultKeys = map[Role][]string{
	RoleCache:    {"{app}:*"},
	RoleQueue:    {"{app}.*"},
	RoleLock:     {"{app}:lock:*"},
	RolePubSub:   {"{app}.*"},
	RoleWorkerID: nil,
}

// Database is one role's Redis database.
type Database struct {
	Role Role
	// URL is redis://[user:password@]host:port/db (or rediss://).
	URL string
	// Source says where the URL comes from: an environment variable of
	// the nodes, or a configuration field.
	Source string
}

// Options configures a Manager.
type Options struct {
	// App is the NocoBase app's name, the prefix of its keys (default
	// "main", the name of NocoBase's main app).
	App string
	// Databases are the configured databases; when empty, Env is read.
	Databases []Database
	// Env returns a node's configured environment ("KEY=value"), read
	// once, on first use, when no Databases are configured.
	Env func(ctx context.Context) ([]string, error)
	// Address, if set, returns the address ("host:port") that reaches a
	// database whose URL names addr, e.g. the Redis container's own
	// address where the URL's host is a name only the nodes resolve.
	Address func(ctx context.Context, addr string) (string, error)
	// Keys overrides the key patterns of a role ("{app}" is replaced;
	// each pattern must begin with it). An empty list leaves the role's
	// keys alone.
	Keys map[Role][]string
	// Whole marks roles whose database is NocoBase's alone: every key in
	// it is the app's. A database that holds a key without the app's
	// prefix is then refused (nothing is changed).
	Whole map[Role]bool
	// Timeout bounds each Redis call (default 10s).
	Timeout time.Duration
}

// Manager implements ports.Redis and the backup's queue part.
type Manager struct {
	opts Options
	log  zerolog.Logger

	mu      sync.Mutex
	clients map[string]*goredis.Client // by URL, kept across calls
}

// target is one distinct Redis database and the roles it serves.
type target struct {
	url     string // as given
	shown   string // password redacted
	addr    string
	db      int
	roles   []Role
	sources []string
}

// New returns a Manager; it contacts nothing.
func New(opts Options, log zerolog.Logger) (*Manager, error) {
	if opts.App == "" {
		opts.App = "main"
	}
	if strings.ContainsAny(opts.App, "*?[]\\") {
		return nil, fmt.Errorf("redis: app name %q: no glob characters", opts.App)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	for r, pats := range opts.Keys {
		if !slices.Contains(Roles, r) {
			return nil, fmt.Errorf("redis: keys of %q: not a role (want %s)", r, roleList())
		}
		for _, p := range pats {
			if !strings.HasPrefix(p, "{app}") {
				return nil, fmt.Errorf("redis: key pattern %q of %s: it must begin with {app}, so that only the app's keys are touched", p, r)
			}
		}
	}
	for _, d := range opts.Databases {
		if !slices.Contains(Roles, d.Role) {
			return nil, fmt.Errorf("redis: database role %q: want %s", d.Role, roleList())
		}
		if _, err := goredis.ParseURL(d.URL); err != nil {
			return nil, errBadURL(d.Role, d.Source)
		}
	}
	return &Manager{opts: opts, log: log.With().Str("adapter", "redis").Logger(), clients: map[string]*goredis.Client{}}, nil
}

func roleList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// patterns returns a role's key patterns with the app's name in them.
func (m *Manager) patterns(r Role) []string {
	pats, ok := m.opts.Keys[r]
	if !ok {
		pats = DefaultKeys[r]
	}
	out := make([]string, 0, len(pats))
	for _, p := range pats {
		out = append(out, strings.ReplaceAll(p, "{app}", m.opts.App))
	}
	return out
}

// resolve finds the databases: from the configuration, else from a
// node's environment, read afresh for every operation (an operator may
// have changed it since).
func (m *Manager) resolve(ctx context.Context) ([]*target, error) {
	dbs := m.opts.Databases
	if len(dbs) == 0 && m.opts.Env != nil {
		env, err := m.opts.Env(ctx)
		if err != nil {
			return nil, fmt.Errorf("redis: read the nodes' environment: %w", err)
		}
		if dbs, err = FromEnv(env); err != nil {
			return nil, err
		}
	}
	var out []*target
	for _, d := range dbs {
		o, err := goredis.ParseURL(d.URL)
		if err != nil {
			return nil, errBadURL(d.Role, d.Source)
		}
		i := slices.IndexFunc(out, func(t *target) bool { return t.addr == o.Addr && t.db == o.DB })
		if i < 0 {
			out = append(out, &target{url: d.URL, shown: Redact(d.URL), addr: o.Addr, db: o.DB})
			i = len(out) - 1
		}
		out[i].roles = append(out[i].roles, d.Role)
		out[i].sources = append(out[i].sources, d.Source)
	}
	return out, nil
}

// merge joins the targets that are one database under two spellings
// (127.0.0.1 and localhost, two names that Address maps to one Redis
// container), so that what one role keeps (the queue's jobs) another role
// of the same database does not delete. One database is one server
// (INFO's run_id) and one db number.
func (m *Manager) merge(ctx context.Context, dbs []*target) ([]*target, error) {
	if len(dbs) < 2 {
		return dbs, nil
	}
	var out []*target
	seen := map[string]*target{}
	for _, t := range dbs {
		id, err := m.identity(ctx, t)
		if err != nil {
			return nil, err
		}
		if first := seen[id]; first != nil {
			first.roles = append(first.roles, t.roles...)
			first.sources = append(first.sources, t.sources...)
			continue
		}
		seen[id] = t
		out = append(out, t)
	}
	return out, nil
}

// identity names t's server and db number: the server's run_id, or the
// address dialled where the server refuses INFO (an ACL).
func (m *Manager) identity(ctx context.Context, t *target) (string, error) {
	c, err := m.conn(ctx, t)
	if err != nil {
		return "", err
	}
	cctx, cancel := m.call(ctx)
	info, err := c.Info(cctx, "server").Result()
	cancel()
	var refused goredis.Error
	switch {
	case err == nil:
		for _, line := range strings.Split(info, "\n") {
			if id, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok && id != "" {
				return fmt.Sprintf("server %s db %d", id, t.db), nil
			}
		}
	case !errors.As(err, &refused):
		return "", fmt.Errorf("redis %s unreachable: %w", describeTarget(t), err)
	}
	return fmt.Sprintf("address %s db %d", c.Options().Addr, t.db), nil
}

// conn returns the target's client, connecting on first use.
func (m *Manager) conn(ctx context.Context, t *target) (*goredis.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.clients[t.url]; c != nil {
		return c, nil
	}
	o, err := goredis.ParseURL(t.url)
	if err != nil {
		return nil, fmt.Errorf("redis %s: not a valid redis:// URL", describeTarget(t))
	}
	if m.opts.Address != nil {
		actx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
		addr, err := m.opts.Address(actx, o.Addr)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("redis %s: find its address: %w", t.shown, err)
		}
		o.Addr = addr
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = m.opts.Timeout, m.opts.Timeout, m.opts.Timeout
	o.ContextTimeoutEnabled = true
	o.DisableIdentity = true
	o.PoolSize = 2
	o.MaxRetries = 1
	c := goredis.NewClient(o)
	m.clients[t.url] = c
	return c, nil
}

// call bounds one Redis call.
func (m *Manager) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.opts.Timeout)
}

// Close closes the connections.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for u, c := range m.clients {
		errs = append(errs, c.Close())
		delete(m.clients, u)
	}
	return errors.Join(errs...)
}

// describeTarget names a database and what it serves, for messages.
func describeTarget(t *target) string {
	roles := make([]string, len(t.roles))
	for i, r := range t.roles {
		roles[i] = string(r)
	}
	return fmt.Sprintf("%s %s (%s)", strings.Join(roles, "+"), t.shown, strings.Join(uniq(t.sources), ", "))
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
