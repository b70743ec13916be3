package config

import (
	"strings"
	"testing"
)

func withRedis(section string) string {
	return strings.Replace(minimal, "    load_balancer: {type: none}\n", "    load_balancer: {type: none}\n    redis: "+section+"\n", 1)
}

func TestRedisSection(t *testing.T) {
	c, err := Parse(strings.NewReader(withRedis(`{app: shop, container: prod-redis-1, databases: [{role: cache, url: "redis://redis:6379/0"}, {role: queue, url_env: PROD_REDIS_QUEUE_URL}], keys: {lock: ["{app}:mutex:*"]}, whole: [lock]}`)))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Clusters[0].Redis
	if r.App != "shop" || len(r.Databases) != 2 || r.Databases[1].URLEnv != "PROD_REDIS_QUEUE_URL" || r.Keys["lock"][0] != "{app}:mutex:*" {
		t.Fatalf("redis %+v", r)
	}
	for _, tc := range []struct{ section, want string }{
		{`{databases: [{role: cache, url: "redis://:pw@redis:6379/0"}]}`, "redis.databases[0].url: holds a password"},
		{`{databases: [{role: sessions, url: "redis://redis/0"}]}`, `redis.databases[0].role: "sessions": expected cache, queue`},
		{`{databases: [{role: cache}]}`, "redis.databases[0]: expected url"},
		{`{keys: {lock: ["lock:*"]}}`, `redis.keys.lock: "lock:*": a pattern begins with {app}`},
		{`{whole: [everything]}`, `redis.whole: "everything"`},
		{`{none: true, container: r}`, "redis.none: set none alone"},
		{`{app: "a*"}`, `redis.app: "a*"`},
	} {
		_, err := Parse(strings.NewReader(withRedis(tc.section)))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("%s: %v, want %q", tc.section, err, tc.want)
		}
	}
}
