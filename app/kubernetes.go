package app

import (
	"context"
	"strings"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/backup"
	"github.com/nocobot/nocobot/adapters/kubernetes"
	"github.com/nocobot/nocobot/adapters/lb"
	"github.com/nocobot/nocobot/adapters/nocobase"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// buildKubeCluster connects a cluster that runs on Kubernetes: its nodes
// are the workload's pods, the maintenance switch is the app Service's
// selector, and backups reach the database by URL and the storage folder
// through a short-lived pod that mounts the workload's volumes (or, with
// backup.storage.host_path, where the volume is mounted into nocobot's
// pod).
func buildKubeCluster(cc *config.Cluster, st store.Store, log zerolog.Logger, secret secretFunc, own []string) (*procedures.Cluster, func() error, error) {
	f := "clusters (" + cc.Name + ")"
	k := cc.Kubernetes
	regPw, err := secret(f+".docker.registry.password_env", cc.Docker.Registry.PasswordEnv)
	if err != nil {
		return nil, nil, err
	}
	client, err := kubernetes.Connect(kubernetes.Options{
		Kubeconfig: k.Kubeconfig, Context: k.Context, InCluster: k.InCluster, Namespace: k.Namespace,
		Deployment: k.Deployment, StatefulSet: k.StatefulSet, Selector: k.Selector, Container: k.Container,
		Port: cc.Nodes.Port, StopTimeout: cc.Nodes.StopTimeout.D() + 30e9, StartTimeout: k.StartTimeout.D(),
		RegistryUser: cc.Docker.Registry.Username, RegistryPassword: regPw,
	}, log)
	if err != nil {
		return nil, nil, err
	}
	nodes := kubernetes.NewNodes(client)
	apiKey, err := secret(f+".nocobase.api_key_env", cc.NocoBase.APIKeyEnv)
	if err != nil {
		return nil, nil, err
	}
	app := nocobase.New(nocobase.Options{APIKey: apiKey, APIKeyEnv: cc.NocoBase.APIKeyEnv, Role: cc.NocoBase.Role, PollInterval: cc.NocoBase.PollInterval.D()}, log)

	probe := lb.ProbeOptions{URL: cc.LB.ProbeURL, Timeout: cc.LB.ProbeTimeout.D()}
	var bal ports.Balancer
	switch cc.LB.Type {
	case "kubernetes":
		// The Service's endpoints follow its selector asynchronously: the
		// probe, when set, holds each switch until the public URL shows it.
		bal, err = kubernetes.NewService(client, cc.LB.Kubernetes.Service, cc.LB.Kubernetes.Maintenance)
		if err == nil {
			bal, err = lb.WithProbe(bal, probe, "does this URL reach the Service "+cc.LB.Kubernetes.Service+" (through the ingress)?", log)
		}
	case "webhook":
		bal, err = webhookBalancer(cc, f, secret, probe, log)
	default:
		bal, err = lb.NewNone(probe, log)
	}
	if err != nil {
		return nil, nil, err
	}

	dbURL, err := secret(f+".backup.database.url_env", cc.Backup.Database.URLEnv)
	if err != nil {
		return nil, nil, err
	}
	opts := backupOptions(cc, dbURL, own, st)
	opts.DialectFrom = func(ctx context.Context) (string, error) { return envValue(ctx, client, "DB_DIALECT") }
	opts.StorageHostPath = cc.Backup.Storage.HostPath
	rd, err := buildRedisEnv(cc, nil, client.Env, secret, log)
	if err != nil {
		return nil, nil, err
	}
	if rd != nil {
		opts.Extras = []backup.Extra{rd.Queue()}
	}
	var storage backup.Containers
	if opts.StorageHostPath == "" {
		storage = kubernetes.NewStorage(client)
		opts.StorageContainer, opts.StoragePath = client.StorageName(), cc.Backup.Storage.Path
	}
	bk, err := backup.New(opts, storage, log)
	if err != nil {
		return nil, nil, err
	}
	// The pods of one workload share its environment: no NodeEnv, as for
	// a Swarm service.
	c := clusterFor(cc, nodes, app, bk, bal)
	closer := func() error { return nil }
	if rd != nil {
		c.Redis = rd
		closer = rd.Close
	}
	return c, closer, nil
}

// envValue is key in the workload's container environment ("" if unset).
func envValue(ctx context.Context, c *kubernetes.Client, key string) (string, error) {
	env, err := c.Env(ctx)
	if err != nil {
		return "", err
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, nil
		}
	}
	return "", nil
}
