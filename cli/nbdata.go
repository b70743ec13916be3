package cli

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/format"
)

// cmdBackupsExport writes a nocobot backup as NocoBase's own backup file
// (.nbdata), for NocoBase's Backup manager anywhere. It runs here, on the
// files of the backup destination, and changes nothing in the cluster.
func cmdBackupsExport(ctx context.Context, e *env, args []string) error {
	fs, g := newFlags(e, "backups export", "<backup-id> --nbdata <file.nbdata> [--cluster name]",
		"Writes a backup (database dump, uploads, metadata) as an .nbdata file that NocoBase's\nBackup manager restores; encrypted when clusters[].nbdata.password_env is set.")
	file := fs.String("nbdata", "", "the .nbdata file to write")
	cluster := fs.String("cluster", "", "the backup's cluster (default: the one its id starts with)")
	pos, err := parseArgs(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *file == "" {
		return usageErr("backups export needs a backup id and --nbdata <file>")
	}
	cfg, _, err := load(g, e.stderr)
	if err != nil {
		return err
	}
	cc, err := app.BackupCluster(cfg, *cluster, pos[0])
	if err != nil {
		return notFound(err)
	}
	sum, err := app.ExportNBData(ctx, cc, pos[0], *file)
	if err != nil {
		return err
	}
	defer sum.Close()
	enc := ""
	if sum.Encrypted {
		enc = ", encrypted"
	}
	fmt.Fprintf(e.stdout, "Wrote %s: NocoBase %s, %s dump %s, %d uploads (%s)%s; read back whole.\n",
		*file, sum.Metadata.Version, sum.Metadata.Database.Dialect, format.Bytes(sum.DataBytes), sum.Uploads, format.Bytes(sum.UploadBytes), enc)
	return nil
}

// withBackupsExport runs "backups export …" here and passes every other
// "backups" on to fn. Global flags come first (leadingGlobals passes
// them on so).
func withBackupsExport(fn func(context.Context, *env, []string) error) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if pre, rest, err := leadingGlobals(args); err == nil && len(rest) > 0 && rest[0] == "export" {
			return cmdBackupsExport(ctx, e, append(pre, rest[1:]...))
		}
		return fn(ctx, e, args)
	}
}
