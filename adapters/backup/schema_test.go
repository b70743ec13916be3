package backup

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// split separates what belongs to nocobot's own schema from the rest.
func (s snapshot) split(schema string) (own, rest snapshot) {
	own, rest = snapshot{}, snapshot{}
	for k, v := range s {
		if strings.Contains(k, " "+schema+".") || strings.Contains(k, `"`+schema+`".`) || k == "schema "+schema {
			own[k] = v
		} else {
			rest[k] = v
		}
	}
	return own, rest
}

// nocobot's store may live in the NocoBase database, in its own schema. A
// backup leaves that schema out and a restore never touches it: after
// backup → changes → restore, NocoBase's tables are as they were at the
// backup, and nocobot's rows as they were after the changes.
func TestRestoreNeverRewindsNocobotSchema(t *testing.T) {
	f := newFixture(t, 3, 50)
	c := connect(t, f.dbURL)
	execSQL(t, c, `
CREATE SCHEMA nocobot;
CREATE TABLE nocobot.runs (id text PRIMARY KEY, state text, step text);
CREATE TABLE nocobot.audit (id bigserial PRIMARY KEY, what text);
INSERT INTO nocobot.runs VALUES ('r1', 'running', 'backup');
INSERT INTO nocobot.audit (what) VALUES ('upgrade started');`)
	o := f.localOptions(t)
	o.ExcludeSchemas = []string{"nocobot"}
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	_, nocobaseBefore := dbSnapshot(t, f.dbURL).split("nocobot")
	info := create(t, m, nil)
	if man := readManifest(t, f.dest, info.ID); !slices.Equal(man.Database.ExcludedSchemas, []string{"nocobot"}) {
		t.Errorf("manifest excluded schemas = %v", man.Database.ExcludedSchemas)
	}

	migrateAndChange(t, f.dbURL)
	execSQL(t, c, `
UPDATE nocobot.runs SET state = 'rolling back', step = 'restore';
INSERT INTO nocobot.audit (what) VALUES ('decided: roll back');
ALTER TABLE nocobot.runs ADD COLUMN decided_by text DEFAULT 'U123';`)
	nocobotAfterChange, _ := dbSnapshot(t, f.dbURL).split("nocobot")
	if len(nocobotAfterChange) < 5 {
		t.Fatalf("nocobot's schema not seen: %v", nocobotAfterChange)
	}

	progress := &lines{}
	if err := m.Restore(context.Background(), info.ID, progress.add); err != nil {
		t.Fatalf("restore: %v\n%s", err, progress)
	}
	nocobotNow, nocobaseNow := dbSnapshot(t, f.dbURL).split("nocobot")
	assertSame(t, "NocoBase's tables", nocobaseBefore, nocobaseNow)
	assertSame(t, "nocobot's schema", nocobotAfterChange, nocobotNow)

	// A backup taken before the schema was excluded holds it: restoring
	// it would rewind nocobot, so it is refused and nothing changes.
	o.ExcludeSchemas = nil
	old, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	oldInfo := create(t, old, nil)
	execSQL(t, c, `INSERT INTO nocobot.audit (what) VALUES ('after the old backup'); UPDATE users SET nickname = 'changed' WHERE id = 1;`)
	before := dbSnapshot(t, f.dbURL)
	err = m.Restore(context.Background(), oldInfo.ID, progress.add)
	if err == nil || !strings.Contains(err.Error(), "holds schema nocobot") {
		t.Fatalf("restore of a backup that holds nocobot's schema: %v", err)
	}
	assertSame(t, "database after a refused restore", before, dbSnapshot(t, f.dbURL))
}

func TestExcludeSchemasValidated(t *testing.T) {
	for _, bad := range [][]string{{"no-bot"}, {`x"y`}, {"public"}, {""}, {"a b"}} {
		o := Options{Cluster: "a", Dest: "/x", DBURL: "postgres://u@h/db", StorageHostPath: "/s", ExcludeSchemas: bad}
		if _, err := New(o, nil, testLog(t)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// With nocobot's schema in the database, a backup is never an in-server
// copy: swapping a copy in would rewind that schema.
func TestNoCopyWhenNocobotSchemaIsInTheDatabase(t *testing.T) {
	o := Options{Cluster: "a", Dest: t.TempDir(), DBURL: "postgres://u@127.0.0.1:1/db", StorageHostPath: "/s", ExcludeSchemas: []string{"nocobot"}}
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Plan(context.Background()); p.Kind != KindDump || !strings.Contains(p.Reason, "nocobot's own schema") {
		t.Errorf("plan = %+v", p)
	}
}
