package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// FillDatabase adds about mb MiB of NocoBase-like rows (jsonb, text,
// bytea, timestamps, an index) to the database at dbURL, for the
// measurements, and returns the database's size on disk.
func FillDatabase(t testing.TB, dbURL string, mb int) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to the database to fill: %v", err)
	}
	defer c.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%.80s: %v", sql, err)
		}
	}
	exec(`CREATE TABLE "bigRecords" (id bigserial PRIMARY KEY, title text, payload jsonb, blob bytea, "createdAt" timestamptz, "updatedById" bigint)`)
	// A row is ~0.75 KiB on disk with its index entries.
	rows := mb * 1330
	const batch = 100000
	for done := 0; done < rows; done += batch {
		n := min(batch, rows-done)
		exec(fmt.Sprintf(`INSERT INTO "bigRecords" (title, payload, blob, "createdAt", "updatedById")
SELECT 'Record '||g||' '||md5(g::text), jsonb_build_object('g', g, 'name', md5((g*7)::text), 'tags', jsonb_build_array(md5((g*3)::text), g %% 97), 'text', repeat(md5((g*11)::text), 6)),
  decode(md5(g::text)||md5((g+1)::text)||md5((g+2)::text)||md5((g+3)::text)||md5((g+4)::text)||md5((g+5)::text)||md5((g+6)::text)||md5((g+7)::text), 'hex'),
  timestamptz '2024-01-01' + g * interval '1 second', g %% 1000
FROM generate_series(%d, %d) g`, done+1, done+n))
	}
	exec(`CREATE INDEX ON "bigRecords" ("updatedById")`)
	exec("VACUUM ANALYZE")
	// A database in use is not one just bulk-loaded: flush what the load
	// left dirty, so that whichever side is timed first does not pay it.
	exec("CHECKPOINT")
	syscall.Sync()
	var size int64
	if err := c.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		t.Fatal(err)
	}
	return size
}

// FillStorage adds mb MiB of uploads (incompressible, 1 MiB files, 100 to
// a folder) to a NocoBase storage folder.
func FillStorage(t testing.TB, root string, mb int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for i := range mb {
		rand.Read(buf)
		p := filepath.Join(root, "uploads", fmt.Sprintf("bulk/%03d/file-%d.bin", i/100, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
