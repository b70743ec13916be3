package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
)

// checkStore reaches the store without changing it: the embedded file's
// folder must be writable; PostgreSQL must accept the login.
func checkStore(ctx context.Context, cfg *config.Config) (string, error) {
	if cfg.Store.URL == "" {
		dir := filepath.Dir(cfg.Store.Path)
		f, err := os.CreateTemp(dir, ".nocobot-check-*")
		if err != nil {
			return "", fmt.Errorf("the embedded store's folder %s is not writable: %w", dir, errors.Unwrap(err))
		}
		f.Close()
		os.Remove(f.Name())
		if _, err := os.Stat(cfg.Store.Path); errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("embedded %s (created at the first serve or run)", cfg.Store.Path), nil
		}
		return "embedded " + cfg.Store.Path, nil
	}
	pc, err := pgx.ParseConfig(cfg.Store.URL)
	if err != nil {
		return "", fmt.Errorf("store.url: %w", err)
	}
	if pw, err := config.Secret("store.password_env", cfg.Store.PasswordEnv); err != nil {
		return "", err
	} else if pw != "" {
		pc.Password = pw
	}
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL at %s:%d: %w", pc.Host, pc.Port, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.Ping(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("PostgreSQL at %s:%d, database %s", pc.Host, pc.Port, pc.Database), nil
}

// clusterChecks asks a cluster's Docker engine for its nodes, checks
// that a backup could be taken, probes each running node's NocoBase (and
// the API key on the first healthy one), and fetches the probe URL.
func clusterChecks(ctx context.Context, cc *config.Cluster, c *procedures.Cluster, timeout time.Duration) []checkResult {
	var out []checkResult
	// what is "docker (prod)", or "nocobase (prod) app-1" about a node.
	add := func(kind, node string, fn func(ctx context.Context) (string, error)) {
		detail, err := within(ctx, timeout, fn)
		out = append(out, checkResult{what: kind + " (" + cc.Name + ")" + prefixed(" ", node), detail: detail, err: err})
	}
	var nodes []ports.Node
	engine, none := "docker", "the engine answers, but no container matches nodes.labels / swarm_service"
	if cc.Kubernetes.Set() {
		engine, none = "kubernetes", "the API server answers, but the workload has no pods and no recorded size"
	}
	add(engine, "", func(ctx context.Context) (string, error) {
		var err error
		nodes, err = c.Nodes.List(ctx)
		if err != nil {
			return "", err
		}
		if len(nodes) == 0 {
			return "", errors.New(none)
		}
		names := make([]string, len(nodes))
		for i, n := range nodes {
			names[i] = n.Name
		}
		return fmt.Sprintf("%d nodes: %s", len(nodes), strings.Join(names, ", ")), nil
	})
	if len(nodes) > 0 {
		add("backup and database", "", func(ctx context.Context) (string, error) {
			if err := c.Backups.Check(ctx); err != nil {
				return "", err
			}
			return "destination " + cc.Backup.Destination + " writable, database reachable", nil
		})
	}
	client, _ := c.App.(*nocobase.Client)
	keyChecked := cc.NocoBase.APIKeyEnv == ""
	for _, n := range nodes {
		if !n.Running() {
			out = append(out, checkResult{what: "nocobase (" + cc.Name + ") " + n.Name, detail: "the node is stopped: not asked", skipped: true})
			continue
		}
		add("nocobase", n.Name, func(ctx context.Context) (string, error) {
			st, err := c.App.Probe(ctx, n.URL)
			if err != nil {
				return "", err
			}
			if !st.Healthy {
				return "", fmt.Errorf("%s answers but is not healthy: %s", n.URL, nocobase.Describe(st))
			}
			return n.URL + " healthy", nil
		})
		if !keyChecked && client != nil && out[len(out)-1].err == nil {
			keyChecked = true
			add("nocobase api key", "", func(ctx context.Context) (string, error) {
				if _, err := client.Plugins(ctx, n); err != nil {
					return "", err
				}
				return "accepted by " + n.Name, nil
			})
		}
	}
	if cc.LB.ProbeURL != "" {
		add("load balancer probe", "", func(ctx context.Context) (string, error) { return probeURL(ctx, cc.LB.ProbeURL) })
	}
	return out
}

// probeURL fetches the load balancer's public URL: any HTTP answer means
// it is reachable (a 503 is the maintenance page).
func probeURL(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return fmt.Sprintf("%s answers HTTP %d", url, resp.StatusCode), nil
}
