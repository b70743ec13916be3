package backup

import (
	"archive/zip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/nbdata"
)

// nocobaseDropAll is the Backup manager's clean-up before pg_restore for
// an app without DB_SCHEMA (dist/server/adapters/database.js, restore).
const nocobaseDropAll = `DO $$ DECLARE r RECORD;
BEGIN
FOR r IN (SELECT viewname,schemaname FROM pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) LOOP
  BEGIN EXECUTE 'DROP VIEW IF EXISTS ' || quote_ident(r.schemaname) || '.' || quote_ident(r.viewname) || ' CASCADE'; EXCEPTION WHEN OTHERS THEN END;
END LOOP;
FOR r IN (SELECT tablename,schemaname FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) LOOP
  BEGIN EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(r.schemaname) || '.' || quote_ident(r.tablename) || ' CASCADE'; EXCEPTION WHEN OTHERS THEN END;
END LOOP;
FOR r IN (SELECT sequencename,schemaname FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) LOOP
  BEGIN EXECUTE 'DROP SEQUENCE IF EXISTS ' || quote_ident(r.schemaname) || '.' || quote_ident(r.sequencename) || ' CASCADE'; EXCEPTION WHEN OTHERS THEN END;
END LOOP;
END $$;`

// TestExportNBDataRestoresAsNocoBaseDoes exports a nocobot backup (both
// dump formats) as an encrypted .nbdata, changes the database, then does
// what NocoBase's restore does with the file (decrypt, unzip, drop the
// tables, pg_restore --clean --if-exists --no-owner, copy the uploads)
// and compares tables and uploads with those at the backup.
func TestExportNBDataRestoresAsNocoBaseDoes(t *testing.T) {
	for _, format := range []string{FormatFolder, FormatStream} {
		t.Run(format, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, 4, 30)
			opts := f.localOptions(t)
			opts.DumpFormat = format
			m, err := New(opts, nil, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			info := create(t, m, nil)
			before := tablesOnly(dbSnapshot(t, f.dbURL))
			file := filepath.Join(t.TempDir(), "prod.nbdata")
			sum, err := ExportNBData(ctx, f.dest, info.ID, file, NBDataOptions{Password: "correct horse"})
			if err != nil {
				t.Fatal(err)
			}
			defer sum.Close()
			if !sum.Encrypted || sum.DataDir != (format == FormatFolder) || sum.Uploads == 0 || !sum.AESKey {
				t.Fatalf("summary %+v", sum)
			}
			if err := sum.Metadata.Check(nbdata.Target{Version: "2.2.15", Dialect: "postgres"}); err != nil {
				t.Fatal(err)
			}
			if _, err := ExportNBData(ctx, f.dest, info.ID, file, NBDataOptions{}); err == nil || !strings.Contains(err.Error(), "exists already") {
				t.Fatalf("overwrite: %v", err)
			}
			migrateAndChange(t, f.dbURL)

			out := t.TempDir()
			unzip(t, sum.Plain, out)
			c := connect(t, f.dbURL)
			execSQL(t, c, nocobaseDropAll)
			c.Close(ctx)
			restore := exec.Command(filepath.Join(testenv.PostgresBin(t), "pg_restore"), "--clean", "--if-exists", "--no-owner", "-j", "1", "-d", f.dbURL, filepath.Join(out, "data"))
			if b, err := restore.CombinedOutput(); err != nil {
				t.Fatalf("pg_restore: %v\n%s", err, b)
			}
			assertSame(t, "tables after NocoBase's way of restoring the export", before, tablesOnly(dbSnapshot(t, f.dbURL)))
			up, err := os.ReadDir(filepath.Join(out, "uploads"))
			if err != nil || len(up) == 0 {
				t.Fatalf("uploads: %v %v", up, err)
			}
		})
	}
}

func tablesOnly(s snapshot) snapshot {
	out := snapshot{}
	for k, v := range s {
		if strings.HasPrefix(k, "rows ") || strings.HasPrefix(k, "relation ") || strings.HasPrefix(k, "column ") {
			out[k] = v
		}
	}
	return out
}

func unzip(t *testing.T, file, dir string) {
	t.Helper()
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, e := range zr.File {
		p := filepath.Join(dir, e.Name)
		if strings.HasSuffix(e.Name, "/") {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		w.Close()
	}
}
