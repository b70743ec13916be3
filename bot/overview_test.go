package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// The overview (a front's App Home) is every cluster's status, with the
// run in progress named by id; looking writes no audit entry.
func TestOverview(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	started := f.disp.Command(ctx, slackUser(uRequest), "maintain")
	f.waitCheckpoint(started.RunID)
	before, _ := f.store.Audit(ctx, store.AuditQuery{})
	rs := f.disp.Overview(ctx)
	if len(rs) != 1 || rs[0].Cluster != "prod" || rs[0].RunID != started.RunID {
		t.Fatalf("overview: %+v", rs)
	}
	if !strings.Contains(rs[0].Plain(), "Running: "+started.RunID+" — ") || !strings.Contains(rs[0].Plain(), "waiting for a decision") {
		t.Fatalf("overview text: %s", rs[0].Plain())
	}
	if after, _ := f.store.Audit(ctx, store.AuditQuery{}); len(after) != len(before) {
		t.Fatalf("the overview was audited: %d → %d entries", len(before), len(after))
	}
}

// States read as English after "is" and in parentheses.
func TestStateWords(t *testing.T) {
	for state, want := range map[store.RunState]string{
		store.StateFailed: "waiting for a decision after a failed step", store.StateWaiting: "waiting for a decision",
		store.StateRolledBack: "rolled back", store.StateRollingBack: "rolling back", store.StateSucceeded: "succeeded",
	} {
		if got := bot.StateWords(state); got != want {
			t.Errorf("%s: %q, want %q", state, got, want)
		}
	}
}

// A moment is a span of its own: plain text shows it in UTC, and a
// front may show it in each reader's time zone.
func TestAtSpan(t *testing.T) {
	at := time.Date(2026, 11, 30, 13, 4, 5, 0, time.FixedZone("CET", 3600))
	txt := bot.T("decided at ", bot.At(at))
	if txt.Plain() != "decided at 12:04:05 UTC" || txt[1].Kind != bot.SpanTime || !txt[1].At.Equal(at) {
		t.Fatalf("text: %+v", txt)
	}
}

// The backups listing says what a backup still holds when that is not
// all of it (its in-server copy was swapped in by a rollback).
func TestBackupsListingSaysWhatABackupHolds(t *testing.T) {
	f := newFixture(t)
	const holds = "storage only: its in-server copy was swapped in by a restore (it is the database now) and never exported"
	f.world.AddBackupInfo(ports.BackupInfo{ID: "prod-20261207T101010Z", Cluster: "prod", Version: "1.7.13", Verified: true,
		Created: time.Now().Add(-time.Hour), Kind: "copy", Holds: holds})
	f.world.AddBackupInfo(ports.BackupInfo{ID: "prod-20261207T111111Z", Cluster: "prod", Version: "1.7.13", Verified: true,
		Created: time.Now(), Kind: "dump"})
	r := f.disp.Command(context.Background(), slackUser(uRequest), "backups prod")
	text := r.Plain()
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "prod-20261207T101010Z") && !strings.Contains(l, holds) {
			t.Errorf("the swapped-in backup's line does not say what it holds: %q", l)
		}
		if strings.Contains(l, "prod-20261207T111111Z") && strings.Contains(l, "only") {
			t.Errorf("a whole backup's line: %q", l)
		}
	}
	if !strings.Contains(text, "prod-20261207T101010Z") {
		t.Errorf("listing: %s", text)
	}
}
