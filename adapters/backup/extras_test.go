package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/redis"
	"github.com/nocobot/nocobot/internal/testenv"
)

// The Redis queue's jobs are part of a backup: saved beside the dump,
// checksummed in the manifest, put back by the restore exactly as they
// were (jobs queued since are gone); the manifest says what it holds.
func TestBackupHoldsRedisQueue(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 3, 10)
	url := testenv.NewRedisDB(t)
	o, _ := goredis.ParseURL(url)
	rc := goredis.NewClient(o)
	defer rc.Close()
	if err := rc.RPush(ctx, "main.workflow.pending", "exec-1", "exec-2").Err(); err != nil {
		t.Fatal(err)
	}
	rc.Set(ctx, "main:app:systemSettings", "cached", 0)
	rd, err := redis.New(redis.Options{Databases: []redis.Database{{Role: redis.RoleQueue, URL: url, Source: "test"}}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	opts := f.localOptions(t)
	opts.Extras = []Extra{rd.Queue()}
	m, err := New(opts, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	info := create(t, m, nil)
	if len(info.Extras) != 1 || !strings.Contains(info.Extras[0], "1 key saved") {
		t.Fatalf("backup info extras %q", info.Extras)
	}
	man := readManifest(t, f.dest, info.ID)
	if len(man.Extras) != 1 || man.Extras[0].Part != redis.QueuePart || !strings.Contains(man.Extras[0].Summary, "1 key saved") {
		t.Fatalf("manifest extras %+v", man.Extras)
	}
	if partSize(&man, redis.QueuePart) == 0 || !man.hasPart(redis.QueuePart) {
		t.Fatalf("queue part not in the manifest's parts: %+v", man.Parts)
	}

	// The newer version works the queue.
	rc.LPop(ctx, "main.workflow.pending")
	rc.RPush(ctx, "main.workflow.pending", "exec-of-the-newer-version")
	rc.Set(ctx, "main.workflow.newer", "x", time.Hour)
	progress := &lines{}
	if err := m.Restore(ctx, info.ID, progress.add); err != nil {
		t.Fatalf("restore: %v\n%s", err, progress)
	}
	if got := rc.LRange(ctx, "main.workflow.pending", 0, -1).Val(); strings.Join(got, ",") != "exec-1,exec-2" {
		t.Fatalf("queue after the restore: %q", got)
	}
	if rc.Exists(ctx, "main.workflow.newer").Val() != 0 {
		t.Fatal("a job queued after the backup survived the restore")
	}
	if rc.Get(ctx, "main:app:systemSettings").Val() != "cached" {
		t.Fatal("the restore touched a key that is not the queue's")
	}
	if !strings.Contains(progress.String(), "the queue's 2 keys deleted, the backup's 1 key put back") {
		t.Errorf("progress:\n%s", progress)
	}

	// A damaged queue part fails verification: nothing is changed.
	rc.RPush(ctx, "main.workflow.pending", "exec-3")
	p := filepath.Join(f.dest, info.ID, redis.QueuePart)
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), `"ttl"`, `"ttx"`, 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = m.Restore(ctx, info.ID, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore of a damaged part: %v", err)
	}
	if got := rc.LLen(ctx, "main.workflow.pending").Val(); got != 3 {
		t.Fatalf("queue changed by a refused restore: %d jobs", got)
	}
}
