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
