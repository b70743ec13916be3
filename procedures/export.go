package procedures

import (
	"context"
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

// The backup inside the downtime is an in-server copy where the server
// allows it (seconds, and a rollback by renames); the portable dump is
// taken from that copy once traffic is back, so the downtime never
// includes it.

// exportStepDef is the step after the load balancer is back: it exports
// a copy-kind backup to a verified dump and reports it in the thread; a
// dump is finished there (one taken uncompressed to keep the downtime
// short is compressed).
func exportStepDef() stepDef {
	return stepDef{name: "export", title: "Export the backup (portable dump) outside the downtime", idempotent: true, afterService: true, do: exportStep}
}

func exportStep(ctx context.Context, env *stepEnv) (string, error) {
	f := env.facts()
	id := f.BackupID()
	switch {
	case id == "":
		return "no backup was taken in this run: nothing to export", nil
	case f.BackupKind() != ports.BackupCopy:
		info, err := env.c.Backups.Export(ctx, id, env.progress)
		if err != nil {
			return "", fmt.Errorf("finishing backup %s: %w (traffic is back on the app; the backup stays as it was: retry, or abort to keep it so)", id, err)
		}
		return fmt.Sprintf("backup %s is a dump already, portable as it is: kept as %s (compressed now where it was written uncompressed)", id, format.Bytes(info.Size)), nil
	}
	info, err := env.c.Backups.Export(ctx, id, env.progress)
	if err != nil {
		return "", fmt.Errorf("export of backup %s: %w (traffic is back on the app; the in-server copy stays the backup: retry, or abort to keep it as it is)", id, err)
	}
	env.record(func(w factWriter) { w.setExported(info.ID) })
	return fmt.Sprintf("backup %s exported: a verified portable dump (%s), taken after traffic was back", info.ID, format.Bytes(info.Size)), nil
}

// kindNote names a backup's kind for the step's detail.
func kindNote(kind string) string {
	switch kind {
	case ports.BackupCopy:
		return ", an in-server copy of the database (its portable dump is exported after traffic is back)"
	case ports.BackupDump:
		return ", a dump"
	}
	return ""
}

// backupPlan says which kind of backup a run will take, and why.
// nodesStopped: the run takes it with every node stopped.
func backupPlan(ctx context.Context, c *Cluster, nodesStopped bool) string {
	kind, why := c.Backups.PlanKind(ctx, nodesStopped)
	switch kind {
	case ports.BackupCopy:
		return "in-server copy of the database (" + why + "); the portable dump is exported after traffic is back"
	case ports.BackupDump:
		return "dump inside the downtime (" + strings.TrimPrefix(why, "no in-server copy: ") + ")"
	}
	return kind + " (" + why + ")"
}
