package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures"
)

// A cluster's Redis comes from its nodes' environment, read through a real
// Docker engine; its URL names a host only the nodes resolve, so nocobot
// goes through the Redis container's address. The plan names it without
// its password; a reset empties the app's cache and nothing else.
func TestRedisFromTheNodesEnvironment(t *testing.T) {
	host := testenv.DockerHost(t)
	db := testenv.NewRedisDB(t)
	o, err := goredis.ParseURL(db)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(o.Addr)
	asNodesSee := fmt.Sprintf("redis://default:node-secret@redis-svc:%s/%d", port, o.DB)
	img := testenv.NodeImage(t, host, "2.2.15")
	cluster := fmt.Sprintf("rds-%d", os.Getpid())
	// The nodes run with host networking: the "Redis container" is one of
	// them here, reached on loopback.
	n := testenv.RunNode(t, host, testenv.NodeSpec{Name: cluster + "-app-1", Image: img, Created: true,
		Labels: map[string]string{"nocobot.test.cluster": cluster},
		Env:    []string{"CACHE_DEFAULT_STORE=redis", "CACHE_REDIS_URL=" + asNodesSee}})

	rc := goredis.NewClient(o)
	defer rc.Close()
	ctx := context.Background()
	rc.Set(ctx, "main:app:systemSettings", "newer", 0)
	rc.Set(ctx, "main:roles:1", "newer", 0)
	rc.Set(ctx, "shop:app:systemSettings", "another app", 0)

	dir := testenv.TempDir(t)
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(`
store: {path: %[1]q}
slack: {mode: "off"}
clusters:
  - name: prod
    docker: {host: %[2]q}
    nodes: {labels: {nocobot.test.cluster: %[3]s}}
    load_balancer: {type: none}
    redis: {container: %[4]s}
    backup: {destination: %[5]q, database: {container: db, name: nocobase}}
`, filepath.Join(dir, "n.db"), host, cluster, n.Name, filepath.Join(dir, "b"))))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlanner(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	plan, err := p.Engine.Plan(ctx, procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "2.2.16", Requester: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Redis: cache redis://default:***@redis-svc:%s/%d (CACHE_REDIS_URL): keys main:* deleted while every node is stopped", port, o.DB)
	if !strings.Contains(plan, want) || strings.Contains(plan, "node-secret") {
		t.Fatalf("plan lacks %q or shows the password:\n%s", want, plan)
	}

	clusters, closeClusters, err := buildClusters(cfg, nil, nil, zerolog.Nop(), config.Secret)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClusters()
	got, err := clusters[0].Redis.Reset(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "node-secret") || !strings.Contains(got, "2 keys deleted") {
		t.Errorf("reset said %q", got)
	}
	if left, _ := rc.Keys(ctx, "*").Result(); len(left) != 1 || left[0] != "shop:app:systemSettings" {
		t.Errorf("keys left: %q", left)
	}
}
