package redis

import (
	"fmt"
	"net/url"
	"strings"
)

// FromEnv finds the Redis databases a node's environment names
// ("KEY=value" pairs). NocoBase's cache is in Redis only with
// CACHE_DEFAULT_STORE=redis, and then at CACHE_REDIS_URL, else REDIS_URL
// (packages/core/app/src/config/cache.ts); REDIS_URL is also the worker id
// allocator's. No variable set: no database, no error.
func FromEnv(env []string) ([]Database, error) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = strings.TrimSpace(v)
		}
	}
	var out []Database
	add := func(role Role, name string) error {
		v := vars[name]
		if v == "" {
			return nil
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return fmt.Errorf("redis: the nodes' %s is not a redis:// URL (%s)", name, Redact(v))
		}
		out = append(out, Database{Role: role, URL: v, Source: name})
		return nil
	}
	if strings.EqualFold(vars["CACHE_DEFAULT_STORE"], "redis") {
		name := "CACHE_REDIS_URL"
		if vars[name] == "" {
			name = "REDIS_URL"
		}
		if vars[name] == "" {
			return nil, fmt.Errorf("redis: the nodes set CACHE_DEFAULT_STORE=redis but neither CACHE_REDIS_URL nor REDIS_URL")
		}
		if err := add(RoleCache, name); err != nil {
			return nil, err
		}
	}
	for _, v := range []struct {
		role Role
		name string
	}{
		{RoleQueue, "QUEUE_ADAPTER_REDIS_URL"},
		{RoleLock, "LOCK_ADAPTER_REDIS_URL"},
		{RolePubSub, "PUBSUB_ADAPTER_REDIS_URL"},
		{RoleWorkerID, "REDIS_URL"},
	} {
		if err := add(v.role, v.name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Redact returns a Redis URL without its password ("redis://:***@host:6379/0");
// a string that is no URL is not shown at all.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a value that is not a URL)"
	}
	u.RawQuery = ""
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxx")
			return strings.Replace(u.String(), ":xxx@", ":***@", 1)
		}
	}
	return u.String()
}

// errBadURL says that a database's URL is not one, naming only where it
// comes from: the parser's own message is never shown, as net/url's
// quotes the URL (with %q, escaped) password and all.
func errBadURL(role Role, source string) error {
	return fmt.Errorf("redis: %s database (%s): not a valid redis:// URL (redis[s]://[user:password@]host:port/db); correct it there", role, source)
}
