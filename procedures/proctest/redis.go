package proctest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nocobot/nocobot/ports"
)

// redisState is the world's Redis: a cache filled by running nodes, locks
// they hold, and a queue of jobs that backups save and restores put back.
type redisState struct {
	on bool
	// cacheOf is what the cache was filled from: the version the filling
	// node ran and the database generation ("" when empty).
	cacheOf string
	// locks are held by the nodes that took them, running or not.
	locks []string
	queue []string
	// gen counts restores: a restored database is another generation.
	gen int
}

// UseRedis gives the world a Redis (cluster mode) whose cache the running
// nodes have filled and whose queue holds jobs.
func (w *World) UseRedis(jobs ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.redis.on = true
	w.redis.queue = slices.Clone(jobs)
	for _, n := range w.nodes {
		if n.running {
			w.redis.cacheOf = w.cacheTag(n)
			w.redis.locks = append(w.redis.locks, n.name)
		}
	}
}

// Enqueue adds a job to the queue, as a running node would.
func (w *World) Enqueue(job string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.redis.queue = append(w.redis.queue, job)
}

// Queue returns the queue's jobs.
func (w *World) Queue() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.redis.queue)
}

func (w *World) cacheTag(n *node) string { return fmt.Sprintf("%s#%d", n.img.version, w.redis.gen) }

// redisOnStart checks a node that starts (the world's lock held): the
// cache must hold nothing of another version or database; then the node
// fills the cache and takes a lock.
func (w *World) redisOnStart(n *node) {
	if !w.redis.on || n.running {
		return
	}
	tag := w.cacheTag(n)
	if w.redis.cacheOf != "" && w.redis.cacheOf != tag {
		w.violations = append(w.violations, fmt.Sprintf("%s started on a cache filled by %s (it runs %s)", n.name, w.redis.cacheOf, tag))
	}
	w.redis.cacheOf = tag
	w.redis.locks = append(w.redis.locks, n.name)
}

// redisActor is the world's Redis as ports.Redis.
type redisActor struct{ actor }

var _ ports.Redis = redisActor{}

// Describe implements ports.Redis.
func (r redisActor) Describe(ctx context.Context) string {
	return "cache+queue+lock redis://fake/0 (CACHE_REDIS_URL)"
}

// Check implements ports.Redis.
func (r redisActor) Check(ctx context.Context) (string, error) {
	if err := r.act(ctx, "redis-check"); err != nil {
		return "", err
	}
	return "1 database reachable", nil
}

// Reset implements ports.Redis.
func (r redisActor) Reset(ctx context.Context, progress func(string)) (string, error) {
	w := r.w
	if err := r.act(ctx, "redis-reset"); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var running []string
	for _, n := range w.nodes {
		if n.running {
			running = append(running, n.name)
		}
	}
	if len(running) > 0 {
		w.violations = append(w.violations, "Redis reset while "+strings.Join(running, ", ")+" ran")
	}
	w.redis.cacheOf = ""
	n := len(w.redis.locks)
	w.redis.locks = nil
	return fmt.Sprintf("cache emptied, %d locks dropped", n), nil
}
