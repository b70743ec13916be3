// Command fakenocobase is a stand-in for one NocoBase application node in
// tests. It answers the two endpoints the bot relies on the way a real
// node does (see docs/nocobase.md):
//
//   - before it listens: connection refused, for NOCOBASE_START_DELAY;
//   - then, for NOCOBASE_BOOT_TIME, 503 APP_COMMANDING "start" on
//     /api/__health_check and /api/app:getInfo, with a progress message
//     that moves ("load plugin [p3], 3/10" …);
//   - then 200 "ok" (text/plain) and {"data":{"version":…}}.
//
// It is built as a static binary and runs as PID 1 in a test image, so it
// handles SIGTERM itself (a shell as PID 1 would ignore it) and exits at
// once, like a NocoBase node behind a signal-forwarding entrypoint.
//
// Configuration, from flags or the environment (flags win):
//
//	-listen      NOCOBASE_LISTEN       address to serve on (default :13000)
//	-version     NOCOBASE_VERSION      version reported by app:getInfo (baked into test images)
//	-start-delay NOCOBASE_START_DELAY  time before listening (Go duration, default 0)
//	-boot-time   NOCOBASE_BOOT_TIME    time answering 503 APP_COMMANDING (default 1s)
//	-storage     NOCOBASE_STORAGE      if set, a folder where each start appends a line to starts.log
//	-fail-code   NOCOBASE_FAIL_CODE    if set (e.g. APP_ERROR), stay at 503 with that code after booting
//	-db          NOCOBASE_DB           if set, a folder standing for the database: see migrations.go
//	             NOCOBASE_DB_LOG       where the database's logs go (default: that folder)
//	-migrate-time NOCOBASE_MIGRATE_TIME time an upgrade takes to run its migrations (default 1s)
//	             NOCOBASE_API_KEY      if set, answer the plugin manager with this key (plugins.go)
//	             NOCOBASE_PLUGIN_LOG   where plugin actions are recorded
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "fakenocobase: bad %s=%q, using %s\n", key, v, def)
	}
	return def
}

func main() {
	listen := flag.String("listen", env("NOCOBASE_LISTEN", ":13000"), "address to serve on")
	version := flag.String("version", env("NOCOBASE_VERSION", "0.0.0-fake"), "version reported by app:getInfo")
	startDelay := flag.Duration("start-delay", envDuration("NOCOBASE_START_DELAY", 0), "time before listening")
	bootTime := flag.Duration("boot-time", envDuration("NOCOBASE_BOOT_TIME", time.Second), "time answering 503 APP_COMMANDING")
	storage := flag.String("storage", env("NOCOBASE_STORAGE", ""), "folder to record starts in")
	failCode := flag.String("fail-code", env("NOCOBASE_FAIL_CODE", ""), "error code to keep answering after boot")
	dbDir := flag.String("db", env("NOCOBASE_DB", ""), "folder standing for the database")
	migrateTime := flag.Duration("migrate-time", envDuration("NOCOBASE_MIGRATE_TIME", time.Second), "time an upgrade takes")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var db *database
	if *dbDir != "" {
		db = &database{dir: *dbDir, logDir: env("NOCOBASE_DB_LOG", *dbDir), node: *listen, version: *version, migrateTime: *migrateTime,
			skipSame: os.Getenv("SKIP_SAME_VERSION_UPGRADE") == "true"}
	}
	if db != nil {
		// A node stopped in the middle of its upgrade runs it no longer.
		defer os.Remove(db.path("running", nodeFile(db.node)))
	}
	if err := run(ctx, *listen, *version, *startDelay, *bootTime, *storage, *failCode, db); err != nil {
		fmt.Fprintln(os.Stderr, "fakenocobase:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, version string, startDelay, bootTime time.Duration, storage, failCode string, db *database) error {
	fmt.Printf("fakenocobase %s: starting (listen %s, delay %s, boot %s)\n", version, listen, startDelay, bootTime)
	if storage != "" {
		if err := recordStart(storage, version); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		fmt.Println("fakenocobase: stopped before listening")
		return nil
	case <-time.After(startDelay):
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ready := time.Now().Add(bootTime)
	st := &startState{}
	if db != nil {
		// As NocoBase's quickstart: install or upgrade, then serve.
		st.begin()
		go func() { st.end(db.start()) }()
	}
	srv := &http.Server{Handler: handler(version, ready, bootTime, failCode, st), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("fakenocobase %s: listening on %s\n", version, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// A real node stops in about 2 s; a test double should be quicker.
	sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = srv.Shutdown(sctx)
	fmt.Println("fakenocobase: stopped on signal")
	return nil
}

func recordStart(storage, version string) error {
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return err
	}
	host, _ := os.Hostname()
	f, err := os.OpenFile(filepath.Join(storage, "starts.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s version=%s host=%s\n", time.Now().UTC().Format(time.RFC3339Nano), version, host)
	return errors.Join(err, f.Close())
}

func handler(version string, ready time.Time, bootTime time.Duration, failCode string, st *startState) http.Handler {
	const plugins = 10
	commanding := func(w http.ResponseWriter) bool {
		left := time.Until(ready)
		busy, failed := st.now()
		if left <= 0 && failCode == "" && !busy && failed == nil {
			return false
		}
		body := map[string]any{"status": 503, "maintaining": true}
		switch {
		case failed != nil:
			body["code"] = "APP_ERROR"
			body["message"] = failed.Error()
		case busy:
			body["code"] = "APP_COMMANDING"
			body["command"] = map[string]string{"name": "start"}
			body["message"] = "upgrading..."
		case left > 0:
			done := plugins
			if bootTime > 0 {
				done = int(float64(plugins) * (1 - float64(left)/float64(bootTime)))
			}
			body["code"] = "APP_COMMANDING"
			body["command"] = map[string]string{"name": "start"}
			body["message"] = fmt.Sprintf("load plugin [p%d], %d/%d", done+1, done, plugins)
		default:
			body["code"] = failCode
			body["message"] = "fakenocobase: told to fail with " + failCode
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
		return true
	}
	pm := newPlugins()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pm.serve(w, r) {
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/__health_check"):
			if commanding(w) {
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ok"))
		case r.URL.Path == "/api/app:getInfo":
			if commanding(w) {
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
				"version":  version,
				"database": map[string]string{"dialect": "postgres"},
				"lang":     "en-US",
				"name":     "main",
				"theme":    "default",
			}})
		default:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"message":"Not Found"}]}`))
		}
	})
}
