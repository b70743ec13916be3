package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/backup"
	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/adapters/lb"
	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// buildClusters connects every configured cluster to its adapters. It
// contacts nothing: a Docker engine that is down shows up when used.
func buildClusters(cfg *config.Config, st store.Store, log zerolog.Logger, secret secretFunc) ([]*procedures.Cluster, func(), error) {
	var out []*procedures.Cluster
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		c, closer, err := buildCluster(cc, st, log.With().Str("cluster", cc.Name).Logger(), secret)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		closers = append(closers, closer)
		out = append(out, c)
	}
	return out, closeAll, nil
}

// secretFunc reads a secret named by the configuration (config.Secret).
type secretFunc func(field, env string) (string, error)

// noSecrets stands in for config.Secret where nothing secret is used (a plan).
func noSecrets(string, string) (string, error) { return "", nil }

func buildCluster(cc *config.Cluster, st store.Store, log zerolog.Logger, secret secretFunc) (*procedures.Cluster, func() error, error) {
	f := "clusters (" + cc.Name + ")"
	regPw, err := secret(f+".docker.registry.password_env", cc.Docker.Registry.PasswordEnv)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := docker.New(docker.Options{
		EngineOptions: docker.EngineOptions{Host: cc.Docker.Host, TLSCertPath: cc.Docker.CertPath, TLSVerify: cc.Docker.CertPath != ""},
		Labels:        cc.Nodes.Labels, SwarmService: cc.Nodes.SwarmService, Network: cc.Nodes.Network, Port: cc.Nodes.Port,
		StopTimeout: cc.Nodes.StopTimeout.D(), StartParallelism: cc.Nodes.Parallelism,
		Registry: docker.RegistryAuth{Username: cc.Docker.Registry.Username, Password: regPw},
	}, log)
	if err != nil {
		return nil, nil, err
	}
	apiKey, err := secret(f+".nocobase.api_key_env", cc.NocoBase.APIKeyEnv)
	if err != nil {
		return nil, nil, err
	}
	app := nocobase.New(nocobase.Options{APIKey: apiKey, Role: cc.NocoBase.Role, PollInterval: cc.NocoBase.PollInterval.D()}, log)

	probe := lb.ProbeOptions{URL: cc.LB.ProbeURL}
	var bal procedures.Balancer
	switch cc.LB.Type {
	case "nginx":
		bal, err = lb.NewNginx(lb.NginxOptions{FlagPath: cc.LB.FlagPath, Container: cc.LB.Container, Probe: probe}, nodes, log)
	case "webhook":
		token, serr := secret(f+".load_balancer.secret_env", cc.LB.SecretEnv)
		if serr != nil {
			return nil, nil, serr
		}
		headers := map[string]string{}
		if token != "" {
			headers["Authorization"] = "Bearer " + token
		}
		bal, err = lb.NewWebhook(lb.WebhookOptions{URL: cc.LB.URL, Cluster: cc.Name, Headers: headers, Probe: probe}, log)
	default:
		bal, err = lb.NewNone(probe, log)
	}
	if err != nil {
		return nil, nil, err
	}

	dbPw, err := secret(f+".backup.database.password_env", cc.Backup.Database.PasswordEnv)
	if err != nil {
		return nil, nil, err
	}
	dbURL, err := secret(f+".backup.database.url_env", cc.Backup.Database.URLEnv)
	if err != nil {
		return nil, nil, err
	}
	opts := backup.Options{
		Cluster: cc.Name, Dest: cc.Backup.Destination,
		DBContainer: cc.Backup.Database.Container, DBName: cc.Backup.Database.Name, DBUser: cc.Backup.Database.User, DBPassword: dbPw,
		DBURL: dbURL, PgBin: cc.Backup.Database.PgBin,
		StorageContainer: cc.Backup.Storage.Container, StoragePath: cc.Backup.Storage.Path, StorageHostPath: cc.Backup.Storage.HostPath,
		KeepLast: cc.Backup.KeepLast, MaxAge: cc.Backup.MaxAge.D(),
		Protect: func(ctx context.Context) (map[string]bool, error) { return procedures.BackupsInUse(ctx, st) },
	}
	bk := &lazyBackups{opts: opts, containers: nodes, nodes: nodes, log: log}
	return &procedures.Cluster{
		Name: cc.Name, ImageRepo: cc.Image.Repository, TagSuffix: cc.Image.TagSuffix,
		Nodes: nodes, App: app, Backups: bk, Balancer: bal,
		HealthTimeout: cc.Timeouts.Health.D(), CheckpointTimeout: cc.Timeouts.Checkpoint.D(),
		OnTimeout: procedures.TimeoutPolicy(cc.Timeouts.OnCheckpoint), StepTimeout: cc.Timeouts.Step.D(),
	}, nodes.Close, nil
}

// lazyBackups builds the backup manager on first use, because its
// default storage container is the cluster's first node, which only the
// Docker engine knows.
type lazyBackups struct {
	opts       backup.Options
	containers backup.Containers
	nodes      procedures.Nodes
	log        zerolog.Logger

	mu sync.Mutex
	m  *backup.Manager
}

func (l *lazyBackups) get(ctx context.Context) (*backup.Manager, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m != nil {
		return l.m, nil
	}
	opts := l.opts
	if opts.StorageContainer == "" && opts.StorageHostPath == "" {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		nodes, err := l.nodes.List(c)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("backup: find the node whose storage to copy: %w", err)
		}
		if len(nodes) == 0 {
			return nil, errors.New("backup: no app node to copy the storage folder from (set backup.storage.container or host_path)")
		}
		opts.StorageContainer = nodes[0].Name
	}
	m, err := backup.New(opts, l.containers, l.log)
	if err != nil {
		return nil, err
	}
	l.m = m
	return m, nil
}

func (l *lazyBackups) Check(ctx context.Context) error {
	m, err := l.get(ctx)
	if err != nil {
		return err
	}
	return m.Check(ctx)
}

func (l *lazyBackups) Create(ctx context.Context, req procedures.BackupRequest, p procedures.Progress) (procedures.BackupInfo, error) {
	m, err := l.get(ctx)
	if err != nil {
		return procedures.BackupInfo{}, err
	}
	return m.Create(ctx, req, p)
}

func (l *lazyBackups) Verify(ctx context.Context, id string) (procedures.BackupInfo, error) {
	m, err := l.get(ctx)
	if err != nil {
		return procedures.BackupInfo{}, err
	}
	return m.Verify(ctx, id)
}

func (l *lazyBackups) Restore(ctx context.Context, id string, p procedures.Progress) error {
	m, err := l.get(ctx)
	if err != nil {
		return err
	}
	return m.Restore(ctx, id, p)
}

func (l *lazyBackups) List(ctx context.Context) ([]procedures.BackupInfo, error) {
	m, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return m.List(ctx)
}
