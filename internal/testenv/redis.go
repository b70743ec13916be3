package testenv

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// RedisURL returns the test Redis server's URL without a database, e.g.
// "redis://127.0.0.1:6379".
func RedisURL(t testing.TB) string {
	return need(t, "NOCOBOT_TEST_REDIS_URL", "a Redis server")
}

// NewRedisDB claims an empty database of the test server for one test
// (scripts/test starts it with 64; database 0 holds the claims), empties
// it and returns its URL ("redis://127.0.0.1:6379/7"). Test processes of
// several packages share the server: a claim is a SET NX in database 0,
// released at the end of the test.
func NewRedisDB(t testing.TB) string {
	t.Helper()
	base := RedisURL(t)
	addr := strings.TrimPrefix(base, "redis://")
	for db := 1; db < 64; db++ {
		key := fmt.Sprintf("nocobot-test-claim:%d", db)
		if redisCmd(t, addr, 0, "SET", key, "1", "NX", "EX", "3600") != "+OK" {
			continue
		}
		redisCmd(t, addr, db, "FLUSHDB")
		t.Cleanup(func() {
			redisCmd(t, addr, db, "FLUSHDB")
			redisCmd(t, addr, 0, "DEL", key)
		})
		return fmt.Sprintf("%s/%d", base, db)
	}
	t.Fatal("no free Redis test database")
	return ""
}

// redisCmd sends one command in RESP to database db and returns the
// first line of the answer.
func redisCmd(t testing.TB, addr string, db int, args ...string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	send := func(args ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			t.Fatalf("redis: %v", err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("redis: %v", err)
		}
		return strings.TrimRight(line, "\r\n")
	}
	if got := send("SELECT", fmt.Sprint(db)); got != "+OK" {
		t.Fatalf("redis SELECT %d: %s", db, got)
	}
	return send(args...)
}
