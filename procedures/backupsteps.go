package procedures

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

// Steps that take and restore a run's safety backup.

func backupStep(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	f := env.facts()
	version := f.FromVersion()
	if version == "" {
		version = currentVersion(ctx, env, nodes)
	}
	img := f.PrevImage(nodes[0].Name)
	if img == "" {
		img = nodes[0].Image
	}
	info, err := env.c.Backups.Create(ctx, ports.BackupRequest{Cluster: env.clusterName(), Version: version, Image: img, RunID: env.runID()}, env.progress)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	if !info.Verified {
		return "", fmt.Errorf("backup %s was not verified: not going on without a verified backup", info.ID)
	}
	taken := info.Created
	if taken.IsZero() {
		taken = env.now()
	}
	env.record(func(w factWriter) {
		w.setBackup(info.ID, taken)
		w.setBackupKind(info.Kind)
		w.r.SetFact(factBackupExtras, strings.Join(info.Extras, "; "))
	})
	return joinNonEmpty(append([]string{fmt.Sprintf("backup %s verified (%s)%s", info.ID, format.Bytes(info.Size), kindNote(info.Kind))}, info.Extras...)...), nil
}

func restoreStep(ctx context.Context, env *stepEnv) (string, error) {
	id := env.facts().BackupID()
	if id == "" {
		return "", errors.New("no backup was taken in this run: nothing to restore")
	}
	if err := restoreBackup(ctx, env, id); err != nil {
		return "", err
	}
	if x := env.facts().m[factBackupExtras]; x != "" {
		return "restored backup " + id + "; put back: " + x, nil
	}
	return "restored backup " + id, nil
}

// restoreBackup restores backup id for the running step. Each restore
// stages in a folder of its own (the adapter names it afresh per call), so
// a repeated step never shares one with an earlier attempt.
func restoreBackup(ctx context.Context, env *stepEnv, id string) error {
	if err := env.c.Backups.Restore(ctx, id, env.progress); err != nil {
		return fmt.Errorf("restore %s: %w", id, err)
	}
	return nil
}
