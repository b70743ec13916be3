package procedures

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/store"
)

// factBackupExtras says what the run's backup holds besides database and
// storage (the Redis queue), for the restore's detail.
const factBackupExtras = "backup_extras"

// redisPlan is the plan's Redis line.
func redisPlan(ctx context.Context, c *Cluster) string {
	if c.Redis == nil {
		return "none"
	}
	return c.Redis.Describe(ctx)
}

// preflightRedis checks Redis before any downtime begins.
func preflightRedis(ctx context.Context, env *stepEnv) (string, error) {
	if env.c.Redis == nil {
		return "Redis: none", nil
	}
	s, err := env.c.Redis.Check(ctx)
	if err != nil {
		return "", fmt.Errorf("redis: %w", err)
	}
	return "Redis: " + s, nil
}

// redisResetStepDef empties the cache and drops the locks before a node
// of another version, or on a restored database, starts: everything in
// the cache is derived from the database (docs/nocobase.md), and locks
// are held by nodes that are all stopped now.
func redisResetStepDef(name, title string, skip func(*store.Run) bool) stepDef {
	return stepDef{name: name, title: title, idempotent: true, skip: skip, do: redisReset}
}

func redisReset(ctx context.Context, env *stepEnv) (string, error) {
	if env.c.Redis == nil {
		return "Redis: none", nil
	}
	nodes, err := runNodes(ctx, env)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if n.Running() {
			return "", fmt.Errorf("%s runs: Redis's cache and locks are reset only while every node is stopped; stop it, then retry", n.Name)
		}
	}
	s, err := env.c.Redis.Reset(ctx, env.progress)
	if err != nil {
		return "", fmt.Errorf("redis: %w", err)
	}
	return "Redis: " + s, nil
}

// firstStartRedisReset is the first start's reset: where a node already
// runs (a start after a partial one), its cache is live and stays.
func firstStartRedisReset(ctx context.Context, env *stepEnv) (string, error) {
	if env.c.Redis == nil {
		return "Redis: none", nil
	}
	nodes, err := runNodes(ctx, env)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if n.Running() {
			return fmt.Sprintf("Redis left alone: %s runs (it is reset only while every node is stopped)", n.Name), nil
		}
	}
	return redisReset(ctx, env)
}
