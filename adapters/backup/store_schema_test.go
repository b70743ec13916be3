package backup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	pgstore "github.com/nocobot/nocobot/store/postgres"
)

// nocobot's PostgreSQL store in the NocoBase database itself, in its own
// schema: an upgrade rolled back restores NocoBase's tables, and the run,
// its decisions and the audit log live on, as a replica would read them.
func TestRollbackKeepsTheStoreInNocoBasesDatabase(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 3, 50)
	st, err := pgstore.Open(ctx, f.dbURL, "nocobot", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := f.localOptions(t)
	o.NoCopy = false // as in production: the bot chooses, and the store's schema rules a copy out
	o.ExcludeSchemas = []string{"nocobot"}
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	w := proctest.NewWorld(procOldImage, true, "app-1", "app-2")
	c := w.Cluster("prod")
	c.App = &migratingApp{World: w, migrate: func() { migrateAndChange(t, f.dbURL) }}
	c.Backups = m
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{c}, Log: zerolog.Nop(),
		PollEvery: 20 * time.Millisecond, LeaseTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sub := eng.Subscribe()
	defer sub.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = eng.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	_, nocobaseBefore := dbSnapshot(t, f.dbURL).split("nocobot")
	run, err := eng.Start(ctx, procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade,
		Version: strings.TrimPrefix(procNewImage, "nocobase/nocobase:"), Requester: "U1", Via: "test"})
	if err != nil {
		t.Fatal(err)
	}
	wait := func(kind string) store.Run {
		t.Helper()
		timeout := time.After(3 * time.Minute)
		for {
			select {
			case ev := <-sub.C:
				if ev.Run.ID != run.ID {
					continue
				}
				if kind == "" && ev.Kind == events.RunFinished {
					return ev.Run
				}
				if kind != "" && ev.Kind == events.Checkpoint && ev.Run.Checkpoint != nil && ev.Run.Checkpoint.Kind == kind {
					return ev.Run
				}
				if ev.Kind == events.RunFinished {
					t.Fatalf("the run ended (%s: %s) before checkpoint %s; actions %q", ev.Run.State, ev.Run.Error, kind, w.Actions())
				}
			case <-timeout:
				t.Fatalf("no %q within 3 minutes; actions %q", kind, w.Actions())
			}
		}
	}
	verify := wait("verify")
	if err := eng.AppendAudit(ctx, store.AuditEntry{At: time.Now(), User: "U2", Via: "test", Action: "button rollback", RunID: run.ID, Outcome: "ok: rollback"}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Decide(ctx, store.Decision{RunID: run.ID, Checkpoint: verify.Checkpoint.ID, Action: store.ActionRollback, By: "U2", Via: "test"}); err != nil {
		t.Fatal(err)
	}
	if end := wait(""); end.State != store.StateRolledBack {
		t.Fatalf("run ended %s (%s); actions %q", end.State, end.Error, w.Actions())
	}

	// NocoBase's tables are back as they were; nocobot's records are not
	// rewound: a fresh read of the store sees the run rolled back, its
	// decision and the audit entry made after the backup.
	_, nocobaseNow := dbSnapshot(t, f.dbURL).split("nocobot")
	assertSame(t, "NocoBase's tables", nocobaseBefore, nocobaseNow)
	again, err := pgstore.Open(ctx, f.dbURL, "nocobot", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	got, err := again.GetRun(ctx, run.ID)
	if err != nil || got.State != store.StateRolledBack {
		t.Fatalf("the run as the store has it: %s, %v", got.State, err)
	}
	if ds, err := again.Decisions(ctx, run.ID); err != nil || len(ds) != 1 || ds[0].Action != store.ActionRollback {
		t.Fatalf("decisions: %+v, %v", ds, err)
	}
	if es, err := again.Audit(ctx, store.AuditQuery{RunID: run.ID}); err != nil || len(es) == 0 || es[len(es)-1].Action != "button rollback" {
		t.Fatalf("audit: %+v, %v", es, err)
	}
	if kind := procedures.FactsOf(got).BackupKind(); kind != "" && kind != ports.BackupDump {
		t.Errorf("backup kind %q: the store's schema in the database rules an in-server copy out", kind)
	}
}
