package procedures_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/nbdata"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

func writeNBData(t *testing.T, dir, name string, meta nbdata.Metadata) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	os.WriteFile(data, []byte("PGDMP"), 0o600)
	file := filepath.Join(dir, name)
	if err := nbdata.Write(context.Background(), file, nbdata.Source{Metadata: meta, DataFile: data}, ""); err != nil {
		t.Fatal(err)
	}
	return file
}

// maintain restore <file.nbdata> refuses a file NocoBase would refuse,
// or a damaged one, in preflight: one line, before any downtime.
func TestMaintainRestoreNBDataRefusedBeforeDowntime(t *testing.T) {
	dir := t.TempDir()
	writeNBData(t, dir, "newer.nbdata", nbdata.Metadata{Version: "1.8.0", Database: nbdata.Database{Dialect: "postgres"}})
	writeNBData(t, dir, "mysql.nbdata", nbdata.Metadata{Version: "1.7.13", Database: nbdata.Database{Dialect: "mysql"}})
	good := writeNBData(t, dir, "good.nbdata", nbdata.Metadata{Version: "1.7.13", Database: nbdata.Database{Dialect: "postgres"}})
	b, _ := os.ReadFile(good)
	os.WriteFile(filepath.Join(dir, "damaged.nbdata"), b[:len(b)-30], 0o600)
	for file, want := range map[string]string{
		"newer.nbdata":   "newer.nbdata: backup is from NocoBase 1.8.0, newer than the app's 1.7.13",
		"mysql.nbdata":   "mysql.nbdata: backup is of a mysql database, the app runs on postgres",
		"damaged.nbdata": "damaged.nbdata: damaged zip",
	} {
		t.Run(file, func(t *testing.T) {
			h := newHarnessWith(t, cluster3(), func(c *procedures.Cluster) {
				c.NBData = procedures.NBDataSettings{Dir: dir, Dialect: func(context.Context) (string, error) { return "postgres", nil }}
			})
			h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "restore", Arg: file}}})
			cp := h.waitCheckpoint("failure")
			if q := cp.Checkpoint.Question; !strings.Contains(q, "refused: "+want) {
				t.Fatalf("question %q", q)
			}
			for _, a := range h.world.Actions() {
				if strings.HasPrefix(a, "stop") || strings.HasPrefix(a, "lb") || strings.HasPrefix(a, "backup") {
					t.Fatalf("acted on a refused file: %q", h.world.Actions())
				}
			}
		})
	}
}

func TestMaintainNBDataWords(t *testing.T) {
	r, err := procedures.ParseCommand("maintain prod app-backup restore /srv/backups/backup_20261207_120000_1234.nbdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Actions) != 2 || r.Actions[0].Kind != "app-backup" || r.Actions[1].Arg != "/srv/backups/backup_20261207_120000_1234.nbdata" {
		t.Fatalf("%+v", r.Actions)
	}
	if _, err := procedures.ParseCommand("maintain prod app-backup extra"); err == nil {
		t.Fatal("app-backup took an argument")
	}
}

// withBackupManager adds a Backup manager to the simulated app: its
// backups are .nbdata files written here, its restores are recorded.
type withBackupManager struct {
	ports.App
	t        *testing.T
	meta     nbdata.Metadata
	restored []string
}

func (a *withBackupManager) AppBackup(ctx context.Context, node ports.Node, progress ports.Progress) (string, error) {
	return "backup_20261121_020000_1234.nbdata", nil
}

func (a *withBackupManager) AppBackupDownload(ctx context.Context, node ports.Node, file, dst string) (int64, error) {
	writeNBData(a.t, filepath.Dir(dst), filepath.Base(dst), a.meta)
	return 1, nil
}

func (a *withBackupManager) AppRestore(ctx context.Context, node ports.Node, file, password string, progress ports.Progress) error {
	a.restored = append(a.restored, filepath.Base(file))
	return nil
}

// app-backup keeps the Backup manager's file beside nocobot's backups,
// checked, with its metadata; restore <file> sends it back through the
// Backup manager behind the maintenance page, after nocobot's backup.
func TestMaintainAppBackupThenRestoreIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nbdata-prod")
	var app *withBackupManager
	tune := func(c *procedures.Cluster) {
		app = &withBackupManager{App: c.App, t: t, meta: nbdata.Metadata{Version: "1.7.13", Database: nbdata.Database{Dialect: "postgres"}}}
		c.App = app
		c.NBData = procedures.NBDataSettings{Dir: dir}
	}
	h := newHarnessWith(t, cluster3(), tune)
	h.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "app-backup"}}})
	h.decide(h.waitCheckpoint("verify"), store.ActionContinue, "U2")
	if end := h.waitFinished(); end.State != store.StateSucceeded {
		t.Fatalf("app-backup: %s", end.State)
	}
	file := filepath.Join(dir, "backup_20261121_020000_1234.nbdata")
	if m, err := nbdata.ReadSidecar(file); err != nil || m.Version != "1.7.13" {
		t.Fatalf("sidecar %+v %v", m, err)
	}

	h2 := newHarnessWith(t, cluster3(), tune)
	h2.startRun(procedures.Request{Procedure: procedures.ProcMaintain, Actions: []procedures.MaintAction{{Kind: "restore", Arg: "backup_20261121_020000_1234.nbdata"}}})
	h2.decide(h2.waitCheckpoint("verify"), store.ActionContinue, "U2")
	if end := h2.waitFinished(); end.State != store.StateSucceeded {
		t.Fatalf("restore: %s", end.State)
	}
	if len(app.restored) != 1 {
		t.Fatalf("restored %q", app.restored)
	}
	acts := strings.Join(h2.world.Actions(), ", ")
	backup, maint := strings.Index(acts, "backup"), strings.Index(acts, "lb maintenance")
	if backup < 0 || maint < 0 || backup > maint {
		t.Fatalf("nocobot's backup must come before the restore behind the maintenance page: %s", acts)
	}
	checkSafe(t, h2.world)
}
