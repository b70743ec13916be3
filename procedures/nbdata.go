package procedures

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/nbdata"
	"github.com/nocobot/nocobot/ports"
)

// NocoBase's own backup files (.nbdata, the Backup manager's) in a
// maintain run: "restore <file.nbdata>" and "app-backup". Both run on the
// one node left after the scale-down, after nocobot's own backup: the
// Backup manager keeps its task state in that node's memory.

// NBDataSettings say where a cluster's .nbdata files live and what they
// must match.
type NBDataSettings struct {
	// Dir holds the files "app-backup" copies, and is where a file name
	// without a folder is looked up.
	Dir      string
	Password string // of encrypted files; never logged
	// The app's DB_TABLE_PREFIX, DB_SCHEMA and DB_UNDERSCORED.
	TablePrefix string
	Schema      string
	Underscored bool
	// OwnSchemas are nocobot's own schemas inside the NocoBase database
	// (its store there): NocoBase's restore would drop them.
	OwnSchemas []string
	// Dialect returns the app's database dialect.
	Dialect func(ctx context.Context) (string, error)
}

// appBackups is the Backup manager's API on a node (adapters/nocobase).
type appBackups interface {
	AppBackup(ctx context.Context, node ports.Node, progress ports.Progress) (string, error)
	AppBackupDownload(ctx context.Context, node ports.Node, file, dst string) (int64, error)
	AppRestore(ctx context.Context, node ports.Node, file, password string, progress ports.Progress) error
}

// IsNBData says whether a restore argument names an .nbdata file rather
// than a nocobot backup id.
func IsNBData(arg string) bool { return strings.HasSuffix(arg, nbdata.Extension) }

func (env *stepEnv) appBackups() (appBackups, error) {
	app, l := env.c.App, (*lease)(nil)
	if f, ok := app.(fencedApp); ok {
		app, l = f.in, f.l
	}
	ab, ok := app.(appBackups)
	if !ok {
		return nil, errors.New("this cluster's NocoBase client cannot drive the Backup manager")
	}
	if l != nil {
		return fencedAppBackups{in: ab, l: l}, nil
	}
	return ab, nil
}

// fencedAppBackups checks the run's lease before each call, as fence.go
// does for the other adapters.
type fencedAppBackups struct {
	in appBackups
	l  *lease
}

func (f fencedAppBackups) AppBackup(ctx context.Context, node ports.Node, progress ports.Progress) (string, error) {
	if err := f.l.check(); err != nil {
		return "", err
	}
	return f.in.AppBackup(ctx, node, progress)
}

func (f fencedAppBackups) AppBackupDownload(ctx context.Context, node ports.Node, file, dst string) (int64, error) {
	if err := f.l.check(); err != nil {
		return 0, err
	}
	return f.in.AppBackupDownload(ctx, node, file, dst)
}

func (f fencedAppBackups) AppRestore(ctx context.Context, node ports.Node, file, password string, progress ports.Progress) error {
	if err := f.l.check(); err != nil {
		return err
	}
	return f.in.AppRestore(ctx, node, file, password, progress)
}

// nbdataPath resolves a file argument: as given when it names a folder,
// else in the cluster's .nbdata folder, else in the backup destination
// that holds that folder.
func nbdataPath(c *Cluster, arg string) string {
	if strings.ContainsRune(arg, '/') || c.NBData.Dir == "" {
		return arg
	}
	if p := filepath.Join(c.NBData.Dir, arg); fileExists(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.NBData.Dir), arg)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// scratchDir holds a decrypted copy while a file is checked: the
// cluster's .nbdata folder (in the private backup destination) when it
// exists, else the file's own folder.
func scratchDir(c *Cluster, file string) string {
	if c.NBData.Dir != "" && fileExists(c.NBData.Dir) {
		return c.NBData.Dir
	}
	return filepath.Dir(file)
}

// checkNBData reads file whole and applies NocoBase's rules for the app
// at version; the error is one line.
func checkNBData(ctx context.Context, c *Cluster, file, version string) (*nbdata.Summary, error) {
	dialect := "postgres"
	if c.NBData.Dialect != nil {
		d, err := c.NBData.Dialect(ctx)
		if err != nil {
			return nil, fmt.Errorf("the app's database dialect: %w", err)
		}
		if d != "" {
			dialect = d
		}
	}
	s, err := nbdata.Inspect(ctx, file, c.NBData.Password, scratchDir(c, file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	err = s.Metadata.Check(nbdata.Target{Version: version, Dialect: dialect, TablePrefix: c.NBData.TablePrefix, Schema: c.NBData.Schema, Underscored: c.NBData.Underscored})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	return s, nil
}

func describeNBData(s *nbdata.Summary) string {
	enc := ""
	if s.Encrypted {
		enc = ", encrypted"
	}
	return fmt.Sprintf("NocoBase %s, %s dump %s, %d uploads%s", s.Metadata.Version, s.Metadata.Database.Dialect, format.Bytes(s.DataBytes), s.Uploads, enc)
}

// preflightNBData checks a file to restore before any downtime.
func preflightNBData(ctx context.Context, env *stepEnv, arg string) (string, error) {
	if own := env.c.NBData.OwnSchemas; len(own) > 0 && env.c.NBData.Schema == "" {
		return "", fmt.Errorf("refused: NocoBase's restore drops the tables of every schema of its database, and nocobot's store lives there (schema %s): move the store out, or restore a nocobot backup", strings.Join(own, ", "))
	}
	s, err := checkNBData(ctx, env.c, nbdataPath(env.c, arg), env.facts().FromVersion())
	if err != nil {
		return "", fmt.Errorf("refused: %w", err)
	}
	defer s.Close()
	return arg + ": " + describeNBData(s), nil
}

// nbdataRestoreAction restores an .nbdata through the node's own Backup
// manager (NocoBase's code restores NocoBase's format; it checks the
// metadata again before it changes anything), with traffic on the
// maintenance page; then the node is restarted on an emptied cache, since
// neither the restore nor NocoBase's upgrade empties it.
func nbdataRestoreAction(ctx context.Context, env *stepEnv, arg string) (string, error) {
	ab, err := env.appBackups()
	if err != nil {
		return "", err
	}
	first, _, err := firstNode(ctx, env)
	if err != nil {
		return "", err
	}
	file := nbdataPath(env.c, arg)
	s, err := checkNBData(ctx, env.c, file, env.facts().FromVersion())
	if err != nil {
		return "", fmt.Errorf("refused: %w", err)
	}
	what := describeNBData(s)
	s.Close()
	if _, err := setBalancer(ctx, env, ports.LBMaintenance); err != nil {
		return "", err
	}
	if err := ab.AppRestore(ctx, first, file, env.c.NBData.Password, env.progress); err != nil {
		return "", fmt.Errorf("restore of %s: %w (traffic stays on the maintenance page; roll back restores backup %s)", arg, err, env.facts().BackupID())
	}
	if _, err := stopNodes(ctx, env, ""); err != nil {
		return "", err
	}
	reset, err := redisReset(ctx, env)
	if err != nil {
		return "", err
	}
	up, err := startAndWait(ctx, env, first.Name, expectation{})
	if err != nil {
		return "", err
	}
	if _, err := setBalancer(ctx, env, ports.LBNormal); err != nil {
		return "", err
	}
	return joinNonEmpty("restored "+arg+" ("+what+") through NocoBase's Backup manager", reset, up.String(), "traffic back"), nil
}

// appBackupAction runs the Backup manager on the one node, copies its
// file into the cluster's .nbdata folder with its metadata beside it (as
// NocoBase keeps it), and checks the copy whole.
func appBackupAction(ctx context.Context, env *stepEnv) (string, error) {
	ab, err := env.appBackups()
	if err != nil {
		return "", err
	}
	if env.c.NBData.Dir == "" {
		return "", errors.New("no folder for .nbdata files (the backup destination) is configured")
	}
	first, _, err := firstNode(ctx, env)
	if err != nil {
		return "", err
	}
	name, err := ab.AppBackup(ctx, first, env.progress)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(env.c.NBData.Dir, 0o700); err != nil {
		return "", err
	}
	dst := filepath.Join(env.c.NBData.Dir, name)
	if _, err := ab.AppBackupDownload(ctx, first, name, dst); err != nil {
		return "", err
	}
	s, err := checkNBData(ctx, env.c, dst, env.facts().FromVersion())
	if err != nil {
		return "", fmt.Errorf("the Backup manager's file %s does not check: %w", name, err)
	}
	defer s.Close()
	if err := nbdata.WriteSidecar(dst, s.Metadata); err != nil {
		return "", err
	}
	return fmt.Sprintf("NocoBase's Backup manager wrote %s (%s); copied to %s and read back whole (maintain restore %s restores it)", name, describeNBData(s), dst, name), nil
}
