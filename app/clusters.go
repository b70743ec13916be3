package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/backup"
	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/adapters/lb"
	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// backupOptions are the backup settings every kind of cluster shares;
// the caller adds how its database and storage are reached.
func backupOptions(cc *config.Cluster, dbURL string, own []string, st store.Store) backup.Options {
	opts := backup.Options{
		Cluster: cc.Name, Dest: cc.Backup.Destination,
		DBURL: dbURL, PgBin: cc.Backup.Database.PgBin,
		Dialect: cc.Backup.Database.Dialect, MySQLBin: cc.Backup.Database.MySQLBin,
		KeepLast: cc.Backup.KeepLast, MaxAge: cc.Backup.MaxAge.D(), ExcludeSchemas: own,
		DumpFormat: cc.Backup.DumpFormat, Jobs: cc.Backup.Jobs, Compress: cc.Backup.Compress,
		NoCopy: !cc.Backup.CopyInServer(), KeepCopy: cc.Backup.KeepCopy,
		CopyWhenSpaceUnknown: cc.Backup.CopyWhenSpaceUnknown,
		Protect:              func(ctx context.Context) (map[string]bool, error) { return procedures.BackupsInUse(ctx, st) },
	}
	if l := cc.Backup.CompressLevel; l != nil {
		opts.CompressLevel = *l
	}
	return opts
}

// clusterFor is the engine's view of a cluster that every platform
// shares: names, timeouts and how its nodes start.
func clusterFor(cc *config.Cluster, nodes ports.Nodes, app ports.App, bk ports.Backups, bal ports.Balancer) *procedures.Cluster {
	return &procedures.Cluster{
		Name: cc.Name, ImageRepo: cc.Image.Repository, TagSuffix: cc.Image.TagSuffix,
		Nodes: nodes, App: app, Backups: bk, Balancer: bal,
		HealthTimeout: cc.Timeouts.Health.D(), CheckpointTimeout: cc.Timeouts.Checkpoint.D(),
		OnTimeout: procedures.TimeoutPolicy(cc.Timeouts.OnCheckpoint), StepTimeout: cc.Timeouts.Step.D(),
		StartParallelism: cc.Nodes.Parallelism,
		Migrations:       cc.Nodes.Migrations, PerNodeEnv: cc.Nodes.PerNodeEnv,
		StartDuringVerify: cc.Nodes.StartDuringVerify,
	}
}

// measureBackups wraps a cluster's backup adapter (metrics.Backups).
type measureBackups func(cluster string, b ports.Backups) ports.Backups

// buildClusters connects every configured cluster to its adapters. It
// contacts nothing: a Docker engine that is down shows up when used.
func buildClusters(cfg *config.Config, st store.Store, measure measureBackups, log zerolog.Logger, secret secretFunc) ([]*procedures.Cluster, func(), error) {
	var out []*procedures.Cluster
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		c, closer, err := buildCluster(cc, st, log.With().Str("cluster", cc.Name).Logger(), secret, ownSchemas(cfg))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		closers = append(closers, closer)
		if measure != nil {
			c.Backups = measure(c.Name, c.Backups)
		}
		out = append(out, c)
	}
	return out, closeAll, nil
}

// secretFunc reads a secret named by the configuration (config.Secret).
type secretFunc func(field, env string) (string, error)

// noSecrets stands in for config.Secret where nothing secret is used (a plan).
func noSecrets(string, string) (string, error) { return "", nil }

// ownSchemas are the schemas nocobot's own records live in when its store
// is PostgreSQL: backups leave them out and restores never touch them, so
// a restore of a database the store shares never rewinds nocobot itself.
func ownSchemas(cfg *config.Config) []string {
	if cfg.Store.URL == "" {
		return nil
	}
	return []string{cfg.Store.Schema}
}

func buildCluster(cc *config.Cluster, st store.Store, log zerolog.Logger, secret secretFunc, own []string) (*procedures.Cluster, func() error, error) {
	if cc.Kubernetes.Set() {
		return buildKubeCluster(cc, st, log, secret, own)
	}
	f := "clusters (" + cc.Name + ")"
	regPw, err := secret(f+".docker.registry.password_env", cc.Docker.Registry.PasswordEnv)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := docker.New(docker.Options{
		EngineOptions: docker.EngineOptions{Host: cc.Docker.Host, TLSCertPath: cc.Docker.CertPath, TLSVerify: cc.Docker.CertPath != ""},
		Labels:        cc.Nodes.Labels, SwarmService: cc.Nodes.SwarmService, Network: cc.Nodes.Network, Port: cc.Nodes.Port,
		StopTimeout: cc.Nodes.StopTimeout.D(), StartParallelism: cc.Nodes.Parallelism, PullPolicy: cc.Image.Pull,
		Registry: docker.RegistryAuth{Username: cc.Docker.Registry.Username, Password: regPw},
	}, log)
	if err != nil {
		return nil, nil, err
	}
	apiKey, err := secret(f+".nocobase.api_key_env", cc.NocoBase.APIKeyEnv)
	if err != nil {
		return nil, nil, err
	}
	app := nocobase.New(nocobase.Options{APIKey: apiKey, APIKeyEnv: cc.NocoBase.APIKeyEnv, Role: cc.NocoBase.Role, PollInterval: cc.NocoBase.PollInterval.D()}, log)

	probe := lb.ProbeOptions{URL: cc.LB.ProbeURL, Timeout: cc.LB.ProbeTimeout.D()}
	var bal ports.Balancer
	switch cc.LB.Type {
	case "nginx":
		bal, err = lb.NewNginx(lb.NginxOptions{FlagPath: cc.LB.FlagPath, Container: cc.LB.Container, Probe: probe}, nodes, log)
	case "webhook":
		bal, err = webhookBalancer(cc, f, secret, probe, log)
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
	opts := backupOptions(cc, dbURL, own, st)
	opts.DBContainer, opts.DBName, opts.DBUser, opts.DBPassword = cc.Backup.Database.Container, cc.Backup.Database.Name, cc.Backup.Database.User, dbPw
	opts.DialectFrom = func(ctx context.Context) (string, error) { return nodesDialect(ctx, nodes) }
	opts.StorageContainer, opts.StoragePath, opts.StorageHostPath = cc.Backup.Storage.Container, cc.Backup.Storage.Path, cc.Backup.Storage.HostPath
	opts.Nodes, opts.NBDataDir = nodes, NBDataDir(cc)
	rd, err := buildRedis(cc, nodes, secret, log)
	if err != nil {
		return nil, nil, err
	}
	if rd != nil {
		opts.Extras = []backup.Extra{rd.Queue()}
	}
	bk, err := backup.New(opts, nodes, log)
	if err != nil {
		return nil, nil, err
	}
	c := clusterFor(cc, nodes, app, bk, bal)
	c.NodeEnv = nodes.NodeEnv()
	if c.NBData, err = nbdataSettings(cc, nodes, own); err != nil {
		return nil, nil, err
	}
	closer := nodes.Close
	if rd != nil {
		c.Redis = rd
		closer = func() error { return errors.Join(rd.Close(), nodes.Close()) }
	}
	return c, closer, nil
}

// nodesDialect is DB_DIALECT in the first node's configured environment
// ("" when it is not set).
// webhookBalancer is the load balancer a webhook drives, with the bearer
// token its secret_env names (Docker, Swarm and Kubernetes clusters alike).
func webhookBalancer(cc *config.Cluster, f string, secret secretFunc, probe lb.ProbeOptions, log zerolog.Logger) (ports.Balancer, error) {
	token, err := secret(f+".load_balancer.secret_env", cc.LB.SecretEnv)
	if err != nil {
		return nil, err
	}
	headers := map[string]string{}
	if token != "" {
		headers["Authorization"] = "Bearer " + token
	}
	return lb.NewWebhook(lb.WebhookOptions{URL: cc.LB.URL, Cluster: cc.Name, Headers: headers, Probe: probe}, log)
}

func nodesDialect(ctx context.Context, nodes *docker.Cluster) (string, error) {
	list, err := nodes.List(ctx)
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", fmt.Errorf("no app node to read DB_DIALECT from (set backup.database.dialect)")
	}
	env, err := nodes.Engine().Env(ctx, list[0].ID)
	if err != nil {
		return "", err
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "DB_DIALECT="); ok {
			return v, nil
		}
	}
	return "", nil
}
