package app

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/moby/moby/client"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/adapters/redis"
	"github.com/nocobot/nocobot/config"
)

// buildRedis connects a cluster to its Redis databases (nil with
// redis.none): those the configuration names, else those the first
// node's environment names, read on first use. It contacts nothing.
func buildRedis(cc *config.Cluster, nodes *docker.Cluster, secret secretFunc, log zerolog.Logger) (*redis.Manager, error) {
	return buildRedisEnv(cc, nodes, func(ctx context.Context) ([]string, error) { return nodesEnv(ctx, nodes) }, secret, log)
}

// buildRedisEnv is buildRedis with the nodes' environment read by env;
// nodes (for redis.container) is nil on Kubernetes.
func buildRedisEnv(cc *config.Cluster, nodes *docker.Cluster, env func(context.Context) ([]string, error), secret secretFunc, log zerolog.Logger) (*redis.Manager, error) {
	r := cc.Redis
	if r.None {
		return nil, nil
	}
	f := "clusters (" + cc.Name + ").redis"
	opts := redis.Options{App: r.App, Timeout: r.Timeout.D(), Keys: map[redis.Role][]string{}, Whole: map[redis.Role]bool{}}
	for role, pats := range r.Keys {
		opts.Keys[redis.Role(role)] = pats
	}
	for _, role := range r.Whole {
		opts.Whole[redis.Role(role)] = true
	}
	for i, d := range r.Databases {
		u, source := d.URL, fmt.Sprintf("redis.databases[%d]", i)
		if d.URLEnv != "" {
			v, err := secret(fmt.Sprintf("%s.databases[%d].url_env", f, i), d.URLEnv)
			if err != nil {
				return nil, err
			}
			u, source = v, d.URLEnv
			if v == "" { // a plan reads no secrets
				u, source = "redis://not-read:6379/0", d.URLEnv+", not read for a plan"
			}
		}
		opts.Databases = append(opts.Databases, redis.Database{Role: redis.Role(d.Role), URL: u, Source: source})
	}
	if len(opts.Databases) == 0 {
		opts.Env = env
	}
	if r.Container != "" && nodes == nil {
		return nil, fmt.Errorf("%s.container: a Redis container is a Docker setting: on Kubernetes name the databases (redis.databases)", f)
	}
	if r.Container != "" {
		opts.Address = func(ctx context.Context, addr string) (string, error) {
			return containerAddr(ctx, nodes.Engine(), r.Container, addr)
		}
	}
	return redis.New(opts, log)
}

// nodesEnv is the first node's configured environment.
func nodesEnv(ctx context.Context, nodes *docker.Cluster) ([]string, error) {
	list, err := nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no app node to read the Redis URLs from (name them in redis.databases)")
	}
	return nodes.Engine().Env(ctx, list[0].ID)
}

// containerAddr is how this host reaches the Redis container: its address
// on its network (loopback for host networking), with addr's port.
func containerAddr(ctx context.Context, e *docker.Engine, name, addr string) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		port = "6379"
	}
	res, err := e.Client().ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", name, err)
	}
	ci := res.Container
	if ci.HostConfig != nil && ci.HostConfig.NetworkMode.IsHost() {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if ci.NetworkSettings != nil {
		for _, ep := range ci.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				return net.JoinHostPort(ep.IPAddress.String(), port), nil
			}
		}
	}
	state := "no state"
	if ci.State != nil {
		state = strings.ToLower(string(ci.State.Status))
	}
	return "", fmt.Errorf("container %s has no network address (%s): is it running?", name, state)
}
