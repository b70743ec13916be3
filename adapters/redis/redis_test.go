package redis

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

func testLog(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

func client(t *testing.T, url string) *goredis.Client {
	t.Helper()
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func keys(t *testing.T, c *goredis.Client) []string {
	t.Helper()
	ks, err := c.Keys(context.Background(), "*").Result()
	must(t, err)
	return ks
}

func newManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	m, err := New(opts, testLog(t))
	must(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// The cache and locks of the app go; keys without the app's prefix (another
// app's cache, NocoBase's unprefixed Bloom filter, anything else) stay.
func TestResetDeletesOnlyTheAppsKeys(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewRedisDB(t)
	c := client(t, url)
	must(t, c.Set(ctx, "main:app:systemSettings", `{"roleMode":"allow-use-union"}`, 0).Err())
	must(t, c.Set(ctx, "main:roles:1", "[admin]", time.Hour).Err())
	must(t, c.Set(ctx, "main:lock:workflow:recover:main", "owner", time.Minute).Err())
	must(t, c.Set(ctx, "other:app:systemSettings", "x", 0).Err())
	must(t, c.Set(ctx, "token-black-list", "bloom", 0).Err())
	must(t, c.Set(ctx, "sessions:42", "y", 0).Err())
	must(t, c.RPush(ctx, "main.workflow.pending", "job-1").Err()) // the queue shares the database

	env := []string{"CACHE_DEFAULT_STORE=redis", "CACHE_REDIS_URL=" + url, "LOCK_ADAPTER_REDIS_URL=" + url, "QUEUE_ADAPTER_REDIS_URL=" + url, "PUBSUB_ADAPTER_REDIS_URL=" + url}
	m := newManager(t, Options{Env: func(context.Context) ([]string, error) { return env, nil }})
	got, err := m.Reset(ctx, nil)
	must(t, err)
	left := keys(t, c)
	for _, k := range []string{"other:app:systemSettings", "token-black-list", "sessions:42", "main.workflow.pending"} {
		if !contains(left, k) {
			t.Errorf("%s was deleted; left %q", k, left)
		}
	}
	for _, k := range []string{"main:app:systemSettings", "main:roles:1", "main:lock:workflow:recover:main"} {
		if contains(left, k) {
			t.Errorf("%s survived the reset", k)
		}
	}
	if !strings.Contains(got, "3 keys deleted") || !strings.Contains(got, "4 keys of others left") {
		t.Errorf("summary %q", got)
	}
	// Again: nothing more to delete, nothing else touched.
	got, err = m.Reset(ctx, nil)
	must(t, err)
	if !strings.Contains(got, "0 keys deleted") || len(keys(t, c)) != 4 {
		t.Errorf("second reset: %q, keys %q", got, keys(t, c))
	}
}

func contains(s []string, k string) bool {
	for _, x := range s {
		if x == k {
			return true
		}
	}
	return false
}

// A database said to be NocoBase's alone that holds keys of others is
// refused in one line naming it, and nothing anywhere is deleted.
func TestWholeDatabaseWithForeignKeysIsRefused(t *testing.T) {
	ctx := context.Background()
	cacheURL, lockURL := testenv.NewRedisDB(t), testenv.NewRedisDB(t)
	cache, lock := client(t, cacheURL), client(t, lockURL)
	must(t, cache.Set(ctx, "main:app:systemSettings", "x", 0).Err())
	must(t, lock.Set(ctx, "main:lock:a", "x", 0).Err())
	must(t, lock.Set(ctx, "billing:lock:invoice-7", "held", 0).Err())

	m := newManager(t, Options{
		Databases: []Database{{Role: RoleCache, URL: cacheURL, Source: "redis.databases"}, {Role: RoleLock, URL: lockURL, Source: "redis.databases"}},
		Whole:     map[Role]bool{RoleLock: true},
	})
	if _, err := m.Check(ctx); err == nil || !strings.Contains(err.Error(), "billing:lock:invoice-7") {
		t.Fatalf("check before downtime: %v", err)
	}
	_, err := m.Reset(ctx, nil)
	if err == nil {
		t.Fatal("reset of a shared database said to be NocoBase's alone: no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, lockURL) || !strings.Contains(msg, "nothing was changed") || !strings.Contains(msg, "billing:lock:invoice-7") {
		t.Errorf("refusal: %q", msg)
	}
	if len(keys(t, cache)) != 1 || len(keys(t, lock)) != 2 {
		t.Errorf("keys deleted after a refusal: cache %q, lock %q", keys(t, cache), keys(t, lock))
	}
	// Once the other keys are gone, the database is emptied key by key.
	must(t, lock.Del(ctx, "billing:lock:invoice-7").Err())
	_, err = m.Reset(ctx, nil)
	must(t, err)
	if len(keys(t, cache)) != 0 || len(keys(t, lock)) != 0 {
		t.Errorf("left: cache %q, lock %q", keys(t, cache), keys(t, lock))
	}
}

// The queue's keys saved with a backup come back exactly (values and
// times to live); jobs queued since are gone; other keys are untouched.
func TestQueueSaveRestoreExact(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewRedisDB(t)
	c := client(t, url)
	must(t, c.RPush(ctx, "main.workflow.pending", "job-1", "job-2", "job-3").Err())
	must(t, c.HSet(ctx, "main.async-task.meta", "a", "1", "b", "2").Err())
	must(t, c.PExpire(ctx, "main.async-task.meta", 90*time.Second).Err())
	must(t, c.XAdd(ctx, &goredis.XAddArgs{Stream: "main.notification.send", Values: []string{"to", "u1"}}).Err())
	must(t, c.ZAdd(ctx, "main.workflow.delayed", goredis.Z{Score: 5, Member: "job-9"}).Err())
	must(t, c.Set(ctx, "other.queue.jobs", "theirs-before", 0).Err())

	want := map[string]string{}
	for _, k := range []string{"main.workflow.pending", "main.async-task.meta", "main.notification.send", "main.workflow.delayed"} {
		v, err := c.Dump(ctx, k).Result()
		must(t, err)
		want[k] = v
	}
	env := []string{"QUEUE_ADAPTER_REDIS_URL=" + url}
	m := newManager(t, Options{Env: func(context.Context) ([]string, error) { return env, nil }})
	q := m.Queue()
	if on, err := q.Active(ctx); err != nil || !on {
		t.Fatalf("active %v %v", on, err)
	}
	var part bytes.Buffer
	sum, err := q.Save(ctx, &part)
	must(t, err)
	if !strings.Contains(sum, "4 keys saved") {
		t.Errorf("save summary %q", sum)
	}

	// The newer version works the queue: consumes, queues, expires.
	must(t, c.LPop(ctx, "main.workflow.pending").Err())
	must(t, c.RPush(ctx, "main.workflow.pending", "job-new").Err())
	must(t, c.Set(ctx, "main.workflow.v2-only", "new", 0).Err())
	must(t, c.Del(ctx, "main.workflow.delayed").Err())
	must(t, c.Persist(ctx, "main.async-task.meta").Err())
	must(t, c.Set(ctx, "other.queue.jobs", "theirs-after", 0).Err())

	sum, err = q.Restore(ctx, bytes.NewReader(part.Bytes()))
	must(t, err)
	if !strings.Contains(sum, "the queue's 4 keys deleted, the backup's 4 keys put back") {
		t.Errorf("restore summary %q", sum)
	}
	for k, v := range want {
		got, err := c.Dump(ctx, k).Result()
		if err != nil || got != v {
			t.Errorf("%s not restored as saved (%v)", k, err)
		}
	}
	if n, _ := c.Exists(ctx, "main.workflow.v2-only").Result(); n != 0 {
		t.Error("a key queued after the backup survived the restore")
	}
	if ttl := c.PTTL(ctx, "main.async-task.meta").Val(); ttl < 80*time.Second || ttl > 90*time.Second {
		t.Errorf("time to live %s, want the saved ~90s", ttl)
	}
	if ttl := c.PTTL(ctx, "main.workflow.pending").Val(); ttl != -1 {
		t.Errorf("a key without expiry came back with ttl %s", ttl)
	}
	if v := c.Get(ctx, "other.queue.jobs").Val(); v != "theirs-after" {
		t.Errorf("another app's key was put back: %q", v)
	}
	// A restore cut short is finished by another: same result.
	must(t, c.Del(ctx, "main.workflow.pending").Err())
	_, err = q.Restore(ctx, bytes.NewReader(part.Bytes()))
	must(t, err)
	if got := c.LRange(ctx, "main.workflow.pending", 0, -1).Val(); strings.Join(got, ",") != "job-1,job-2,job-3" {
		t.Errorf("after a second restore: %q", got)
	}
}

// A cluster without Redis is unchanged: no database, "none", no part.
func TestNoRedis(t *testing.T) {
	m := newManager(t, Options{Env: func(context.Context) ([]string, error) { return []string{"DB_DIALECT=postgres"}, nil }})
	if d := m.Describe(context.Background()); d != "none" {
		t.Errorf("describe %q", d)
	}
	if s, err := m.Reset(context.Background(), nil); err != nil || s != "none" {
		t.Errorf("reset %q %v", s, err)
	}
	if on, err := m.Queue().Active(context.Background()); on || err != nil {
		t.Errorf("queue active %v %v", on, err)
	}
}

// Passwords never reach a message: not the plan's, not an error's.
func TestPasswordNeverShown(t *testing.T) {
	base := testenv.RedisURL(t)
	url := strings.Replace(testenv.NewRedisDB(t), "redis://", "redis://nocobot:s3cret-pw@", 1)
	_ = base
	env := []string{"CACHE_DEFAULT_STORE=redis", "CACHE_REDIS_URL=" + url}
	m := newManager(t, Options{Env: func(context.Context) ([]string, error) { return env, nil }, Timeout: 3 * time.Second})
	d := m.Describe(context.Background())
	if strings.Contains(d, "s3cret") || !strings.Contains(d, "nocobot:***@") {
		t.Errorf("describe shows the password or no redaction: %q", d)
	}
	// The test server has no password: AUTH fails, and says so without it.
	_, err := m.Reset(context.Background(), nil)
	if err == nil {
		t.Fatal("reset with a wrong password: no error")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
}

// The URL's host may be a name only the nodes resolve (a compose service):
// Address reaches it through the Redis container's own address.
func TestAddressThroughContainer(t *testing.T) {
	ctx := context.Background()
	real := testenv.NewRedisDB(t)
	c := client(t, real)
	must(t, c.Set(ctx, "main:app:systemSettings", "x", 0).Err())
	o, _ := goredis.ParseURL(real)
	asNodesSee := strings.Replace(real, o.Addr, "redis:6379", 1)
	var asked string
	m := newManager(t, Options{
		Env: func(context.Context) ([]string, error) {
			return []string{"CACHE_DEFAULT_STORE=redis", "CACHE_REDIS_URL=" + asNodesSee}, nil
		},
		Address: func(_ context.Context, addr string) (string, error) { asked = addr; return o.Addr, nil },
	})
	_, err := m.Reset(ctx, nil)
	must(t, err)
	if asked != "redis:6379" || len(keys(t, c)) != 0 {
		t.Errorf("asked %q, keys left %q", asked, keys(t, c))
	}
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, ""},
		{[]string{"CACHE_REDIS_URL=redis://r:6379/0"}, ""}, // memory cache
		{[]string{"CACHE_DEFAULT_STORE=redis", "CACHE_REDIS_URL=redis://r:6379/0"}, "cache:CACHE_REDIS_URL"},
		{[]string{"CACHE_DEFAULT_STORE=redis", "REDIS_URL=redis://r:6379/4"}, "cache:REDIS_URL workerid:REDIS_URL"},
		{[]string{"QUEUE_ADAPTER_REDIS_URL=redis://r/3", "LOCK_ADAPTER_REDIS_URL=redis://r/2", "PUBSUB_ADAPTER_REDIS_URL=redis://r/1"},
			"queue:QUEUE_ADAPTER_REDIS_URL lock:LOCK_ADAPTER_REDIS_URL pubsub:PUBSUB_ADAPTER_REDIS_URL"},
	} {
		dbs, err := FromEnv(tc.env)
		must(t, err)
		var got []string
		for _, d := range dbs {
			got = append(got, string(d.Role)+":"+d.Source)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q: got %q, want %q", tc.env, got, tc.want)
		}
	}
	_, err := FromEnv([]string{"CACHE_DEFAULT_STORE=redis"})
	if err == nil {
		t.Error("redis cache without a URL: no error")
	}
	_, err = FromEnv([]string{"LOCK_ADAPTER_REDIS_URL=http://u:pw@x"})
	if err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("bad URL: %v", err)
	}
}

func TestPatternsMustBeginWithTheApp(t *testing.T) {
	_, err := New(Options{Keys: map[Role][]string{RoleLock: {"lock:*"}}}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "{app}") {
		t.Errorf("unprefixed pattern: %v", err)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		glob, key string
		ok        bool
	}{
		{"main.*", "main.workflow.x", true},
		{"main.*", "main:x", false},
		{"main:lock:*", "main:lock:a/b", true},
		{"m?in.[ab]*", "main.a1", true},
		{"m?in.[ab]*", "main.c1", false},
		{`main\*`, "main*", true},
	} {
		if got := globRE(tc.glob).MatchString(tc.key); got != tc.ok {
			t.Errorf("%s ~ %s: %v", tc.glob, tc.key, got)
		}
	}
}

// A URL the parser rejects is never quoted back: net/url's error quotes
// it whole (with %q, so escaped), password and all. Neither the error,
// the plan nor the log shows any part of the password, in any quoting.
func TestMalformedURLNeverShown(t *testing.T) {
	const bad = `redis://:pa"ss\w0rdZ@redis:6379/0`
	leaks := func(s string) bool {
		for _, p := range []string{`w0rdZ`, `pa"`, `pa\"`, `pa\\\"`, `pa%22`, bad} {
			if strings.Contains(s, p) {
				return true
			}
		}
		return false
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)

	// Named in the configuration (url_env): refused by New.
	_, err := New(Options{Databases: []Database{{Role: RoleQueue, URL: bad, Source: "NOCO_REDIS_URL"}}}, log)
	if err == nil || leaks(err.Error()) || !strings.Contains(err.Error(), "NOCO_REDIS_URL") || !strings.Contains(err.Error(), "not a valid redis:// URL") {
		t.Errorf("configured: %v", err)
	}

	// Read from the nodes' environment: the plan and the reset say so.
	for _, v := range []string{bad, `redis://:w0rdZ@redis:6379/x`} {
		env := []string{"QUEUE_ADAPTER_REDIS_URL=" + v}
		m, err := New(Options{Env: func(context.Context) ([]string, error) { return env, nil }, Timeout: time.Second}, log)
		must(t, err)
		if d := m.Describe(context.Background()); leaks(d) || !strings.Contains(d, "QUEUE_ADAPTER_REDIS_URL") {
			t.Errorf("%s: plan %q", v, d)
		}
		if _, err := m.Reset(context.Background(), nil); err == nil || leaks(err.Error()) {
			t.Errorf("%s: reset %v", v, err)
		}
		if _, err := m.Queue().Active(context.Background()); err == nil || leaks(err.Error()) {
			t.Errorf("%s: queue %v", v, err)
		}
		m.Close()
	}
	if leaks(logs.String()) {
		t.Errorf("log: %s", logs.String())
	}
}

// Two spellings of one database (127.0.0.1 and localhost, or two names
// the Redis container answers to) are one database: pub/sub's default
// pattern is the queue's, and the reset must keep the queue's pending
// jobs wherever they are reached from.
func TestResetKeepsQueueUnderAnotherSpelling(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewRedisDB(t)
	c := client(t, url)
	o, err := goredis.ParseURL(url)
	must(t, err)
	_, port, _ := strings.Cut(o.Addr, ":")
	asLocalhost := strings.Replace(url, o.Addr, "localhost:"+port, 1)
	if !strings.Contains(url, "127.0.0.1:") || asLocalhost == url {
		t.Fatalf("test server URL %q: want 127.0.0.1", url)
	}
	for _, tc := range []struct {
		name          string
		queue, pubsub string
		address       func(context.Context, string) (string, error)
	}{
		{"localhost", url, asLocalhost, nil},
		{"container", strings.Replace(url, o.Addr, "redis:6379", 1), strings.Replace(url, o.Addr, "cache-redis:6379", 1),
			func(context.Context, string) (string, error) { return o.Addr, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, c.FlushDB(ctx).Err())
			must(t, c.RPush(ctx, "main.workflow.pending", "job-1", "job-2").Err())
			must(t, c.Set(ctx, "main:lock:a", "x", 0).Err())
			env := []string{"QUEUE_ADAPTER_REDIS_URL=" + tc.queue, "PUBSUB_ADAPTER_REDIS_URL=" + tc.pubsub, "LOCK_ADAPTER_REDIS_URL=" + tc.pubsub}
			m := newManager(t, Options{Env: func(context.Context) ([]string, error) { return env, nil }, Address: tc.address})
			got, err := m.Reset(ctx, nil)
			must(t, err)
			if jobs := c.LRange(ctx, "main.workflow.pending", 0, -1).Val(); strings.Join(jobs, ",") != "job-1,job-2" {
				t.Errorf("the queue's pending jobs after the reset: %q (%s)", jobs, got)
			}
			if n := c.Exists(ctx, "main:lock:a").Val(); n != 0 {
				t.Errorf("the lock survived the reset (%s)", got)
			}
		})
	}
}
