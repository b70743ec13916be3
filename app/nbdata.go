package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nocobot/nocobot/adapters/backup"
	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/nbdata"
	"github.com/nocobot/nocobot/procedures"
)

// BackupCluster is the cluster a backup id belongs to: the one named,
// else the one whose name prefixes the id (ids are "<cluster>-<time>").
func BackupCluster(cfg *config.Config, cluster, id string) (*config.Cluster, error) {
	if cluster != "" {
		cc, ok := cfg.Cluster(cluster)
		if !ok {
			return nil, fmt.Errorf("no cluster %q in the configuration", cluster)
		}
		return cc, nil
	}
	var found *config.Cluster
	for i := range cfg.Clusters {
		cc := &cfg.Clusters[i]
		if strings.HasPrefix(id, cc.Name+"-") && (found == nil || len(cc.Name) > len(found.Name)) {
			found = cc
		}
	}
	if found == nil {
		return nil, fmt.Errorf("backup %s belongs to no configured cluster: name the cluster", id)
	}
	return found, nil
}

// NBDataPassword is the password of the cluster's .nbdata files ("" when
// none is configured).
func NBDataPassword(cc *config.Cluster) (string, error) {
	return config.Secret("clusters ("+cc.Name+").nbdata.password_env", cc.NBData.PasswordEnv)
}

// ExportNBData writes nocobot backup id as an .nbdata (encrypted when the
// cluster names a password variable) and reads it back.
func ExportNBData(ctx context.Context, cc *config.Cluster, id, file string) (*nbdata.Summary, error) {
	pw, err := NBDataPassword(cc)
	if err != nil {
		return nil, err
	}
	return backup.ExportNBData(ctx, cc.Backup.Destination, id, file, backup.NBDataOptions{
		TablePrefix: cc.NBData.TablePrefix, Schema: cc.NBData.Schema, Underscored: cc.NBData.Underscored, Password: pw,
	})
}

// NBDataDir is the folder of a cluster's .nbdata files (maintain
// app-backup's copies), in its backup destination.
func NBDataDir(cc *config.Cluster) string {
	return filepath.Join(cc.Backup.Destination, "nbdata-"+cc.Name)
}

func nbdataSettings(cc *config.Cluster, nodes *docker.Cluster, own []string) (procedures.NBDataSettings, error) {
	pw, err := NBDataPassword(cc)
	if err != nil {
		return procedures.NBDataSettings{}, err
	}
	return procedures.NBDataSettings{
		Dir: NBDataDir(cc), Password: pw, OwnSchemas: own,
		TablePrefix: cc.NBData.TablePrefix, Schema: cc.NBData.Schema, Underscored: cc.NBData.Underscored,
		Dialect: func(ctx context.Context) (string, error) {
			if d := cc.Backup.Database.Dialect; d != "" {
				return d, nil
			}
			return nodesDialect(ctx, nodes)
		},
	}, nil
}
