package testenv

// The MariaDB server that scripts/test starts: root without a password on
// the loopback port and on the unix socket. There is no MySQL driver among
// the module's dependencies, so tests talk to it through the real client
// (mariadb), as the backup adapter does.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// MySQLURL returns the test server's URL, "mysql://root@127.0.0.1:<port>/".
func MySQLURL(t testing.TB) string {
	return need(t, "NOCOBOT_TEST_MYSQL_URL", "a MariaDB server")
}

// MySQLSocket returns the path of the test server's unix socket.
func MySQLSocket(t testing.TB) string {
	return need(t, "NOCOBOT_TEST_MYSQL_SOCKET", "a MariaDB server")
}

// MySQLBin returns the folder of the client programs (mariadb,
// mariadb-dump).
func MySQLBin(t testing.TB) string {
	return need(t, "NOCOBOT_TEST_MYSQL_BIN", "a MariaDB server")
}

// MySQLExec runs sql (one or more statements) as root over the socket in
// database db ("" for none) and returns the tab-separated rows it printed,
// without column names.
func MySQLExec(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := MySQLRun(context.Background(), t, db, strings.NewReader(sql))
	if err != nil {
		short := sql
		if len(short) > 500 {
			short = short[:500] + "…"
		}
		t.Fatalf("mariadb: %v\n%s", err, short)
	}
	return out
}

// MySQLRun is MySQLExec that returns the error and reads the statements
// from r (a large script is streamed, not held).
func MySQLRun(ctx context.Context, t testing.TB, db string, r io.Reader) (string, error) {
	t.Helper()
	sock, bin := MySQLSocket(t), MySQLBin(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	args := []string{"--no-defaults", "-S", sock, "-uroot", "-N", "-B", "--default-character-set=utf8mb4"}
	if db != "" {
		args = append(args, db)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "mariadb"), args...)
	cmd.Stdin = r
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(stdout.String(), "\n"), nil
}

var mysqlSeq atomic.Int64

// NewMySQLDatabase creates an empty utf8mb4 database for one test, dropped
// at its end, and returns its name.
func NewMySQLDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), mysqlSeq.Add(1))
	MySQLExec(t, "", "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	t.Cleanup(func() {
		_, _ = MySQLRun(context.Background(), t, "", strings.NewReader("DROP DATABASE IF EXISTS `"+name+"`"))
	})
	return name
}

// NewMySQLUser creates a user who may connect from 127.0.0.1 with password
// and do anything on database db (and read the server's state, as a
// dumping user must), dropped at the test's end.
func NewMySQLUser(t testing.TB, db, password string) string {
	t.Helper()
	user := fmt.Sprintf("u_%d_%d", os.Getpid(), mysqlSeq.Add(1))
	q := func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'" }
	MySQLExec(t, "", fmt.Sprintf(`CREATE USER %[1]s@'127.0.0.1' IDENTIFIED BY %[2]s;
CREATE USER %[1]s@'localhost' IDENTIFIED BY %[2]s;
GRANT ALL ON `+"`%[3]s`"+`.* TO %[1]s@'127.0.0.1';
GRANT ALL ON `+"`%[3]s`"+`.* TO %[1]s@'localhost';
GRANT PROCESS, RELOAD, SHOW VIEW, EVENT, TRIGGER ON *.* TO %[1]s@'127.0.0.1';
GRANT PROCESS, RELOAD, SHOW VIEW, EVENT, TRIGGER ON *.* TO %[1]s@'localhost';`, q(user), q(password), db))
	t.Cleanup(func() {
		_, _ = MySQLRun(context.Background(), t, "", strings.NewReader(
			fmt.Sprintf("DROP USER IF EXISTS %[1]s@'127.0.0.1'; DROP USER IF EXISTS %[1]s@'localhost';", q(user))))
	})
	return user
}

// MySQLServer is a MariaDB server of one test's own (see StartMySQLServer).
type MySQLServer struct {
	Port   int
	Socket string
	cmd    *exec.Cmd
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *MySQLServer) Kill() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
}

// StartMySQLServer starts a throw-away MariaDB server for one test, one it
// may kill, run as the mysql user in a temporary folder on a free loopback
// port; root has no password. It is stopped at the test's end.
func StartMySQLServer(t testing.TB) *MySQLServer {
	t.Helper()
	MySQLBin(t)
	if os.Getuid() != 0 {
		t.Skip("starting a MariaDB server of its own needs root (to run it as the mysql user)")
	}
	dir := TempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	// A temporary folder of its own: sharing /tmp with the servers of other
	// test runs on the machine, its temporary tables went missing.
	if out, err := exec.Command("sh", "-c", `mkdir -p "$1" "$2" && chown -R mysql:mysql "$3"`, "sh", data, tmp, dir).CombinedOutput(); err != nil {
		t.Fatalf("prepare %s: %v: %s", dir, err, out)
	}
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=mysql", "--tmpdir="+tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v: %s", err, out)
	}
	s := &MySQLServer{Port: FreePort(t), Socket: filepath.Join(dir, "mysql.sock")}
	s.cmd = exec.Command("mariadbd", "--no-defaults", "--datadir="+data, "--user=mysql", "--bind-address=127.0.0.1",
		fmt.Sprintf("--port=%d", s.Port), "--socket="+s.Socket, "--pid-file="+filepath.Join(dir, "mysql.pid"),
		"--log-error="+filepath.Join(dir, "server.log"), "--tmpdir="+tmp, "--skip-name-resolve", "--skip-log-bin",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=64M")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("mariadbd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		s.Kill()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := exec.Command("mariadb-admin", "--no-defaults", "-S", s.Socket, "-uroot", "ping").Run()
		if err == nil {
			return s
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("mariadbd exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadbd did not start within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Exec runs sql as root over the server's socket and returns its rows.
func (s *MySQLServer) Exec(t testing.TB, db, sql string) string {
	t.Helper()
	args := []string{"--no-defaults", "-S", s.Socket, "-uroot", "-N", "-B", "--default-character-set=utf8mb4"}
	if db != "" {
		args = append(args, db)
	}
	cmd := exec.Command("mariadb", args...)
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb: %v: %s", err, stderr.String())
	}
	return strings.TrimRight(stdout.String(), "\n")
}

// NewMySQLAdmin creates a user with every privilege who may connect from
// 127.0.0.1 and localhost with password, dropped at the test's end.
func NewMySQLAdmin(t testing.TB, password string) string {
	t.Helper()
	user := fmt.Sprintf("a_%d_%d", os.Getpid(), mysqlSeq.Add(1))
	q := func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'" }
	MySQLExec(t, "", fmt.Sprintf(`CREATE USER %[1]s@'127.0.0.1' IDENTIFIED BY %[2]s;
CREATE USER %[1]s@'localhost' IDENTIFIED BY %[2]s;
GRANT ALL PRIVILEGES ON *.* TO %[1]s@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO %[1]s@'localhost' WITH GRANT OPTION;`, q(user), q(password)))
	t.Cleanup(func() {
		_, _ = MySQLRun(context.Background(), t, "", strings.NewReader(
			fmt.Sprintf("DROP USER IF EXISTS %[1]s@'127.0.0.1'; DROP USER IF EXISTS %[1]s@'localhost';", q(user))))
	})
	return user
}
