package nocobase

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nocobot/nocobot/ports"
)

// The answers below have the shapes of @nocobase/plugin-backups 2.2.15
// (dist/server/resourcers/backup-cli.js); the real API is exercised on the
// real cluster (docs/nocobase.md).

func TestAppBackupWaitsAndDownloads(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(401)
			return
		}
		switch r.URL.Path {
		case "/api/backup:create":
			io.WriteString(w, `{"data":{"name":"backup_20261207_120000_1234.nbdata","inProgress":true}}`)
		case "/api/backup:status":
			if polls.Add(1) < 2 {
				io.WriteString(w, `{"data":{"backup_20261207_120000_1234.nbdata":{"inProgress":true}}}`)
				return
			}
			io.WriteString(w, `{"data":{"backup_20261207_120000_1234.nbdata":{"inProgress":false}}}`)
		case "/api/backup:download":
			io.WriteString(w, "PK\x03\x04 the file")
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	c := newClient(t, Options{APIKey: "k"})
	node := ports.Node{Name: "app-1", URL: srv.URL}
	name, err := c.AppBackup(context.Background(), node, func(string) {})
	if err != nil || name != "backup_20261207_120000_1234.nbdata" {
		t.Fatalf("%q %v", name, err)
	}
	dst := filepath.Join(t.TempDir(), name)
	if n, err := c.AppBackupDownload(context.Background(), node, name, dst); err != nil || n != 13 {
		t.Fatalf("%d %v", n, err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "PK\x03\x04 the file" {
		t.Fatalf("%q", b)
	}
}

func TestAppBackupFailureIsReported(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/backup:create":
			io.WriteString(w, `{"data":{"name":"b.nbdata","inProgress":true}}`)
		case "/api/backup:status":
			io.WriteString(w, `{"data":{"b.nbdata":{"inProgress":false,"message":"pg_dump: command not found"}}}`)
		}
	}))
	defer srv.Close()
	_, err := newClient(t, Options{}).AppBackup(context.Background(), ports.Node{Name: "app-1", URL: srv.URL}, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "backup failed: pg_dump: command not found") {
		t.Fatal(err)
	}
}

// NocoBase checks the metadata before it answers: a refusal is the answer.
func TestAppRestoreRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/backup:restoreUpload" {
			w.WriteHeader(404)
			return
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			w.WriteHeader(400)
			return
		}
		f.Close()
		if r.FormValue("password") != "pw" {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(500)
		io.WriteString(w, `{"errors":[{"message":"Database dialect mismatch"}]}`)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "x.nbdata")
	os.WriteFile(file, []byte("zip"), 0o600)
	err := newClient(t, Options{}).AppRestore(context.Background(), ports.Node{Name: "app-1", URL: srv.URL}, file, "pw", func(string) {})
	if err == nil || !strings.Contains(err.Error(), "NocoBase refused the backup (nothing was restored)") || !strings.Contains(err.Error(), "Database dialect mismatch") {
		t.Fatal(err)
	}
}
