package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

// A full destination is reported as such, with the sizes, not as the
// broken pipe it causes in pg_dump; nothing is left behind.
func TestFullDestinationIsReported(t *testing.T) {
	f := newFixture(t, 3, 300)
	dest := smallDest(t, "96k")
	o := f.localOptions(t)
	o.Dest = dest
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(context.Background(), ports.BackupRequest{}, nil)
	if err == nil {
		t.Fatal("a backup larger than its destination succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "no space left on "+dest+" (needs ") || !strings.Contains(msg, ", has ") || strings.Contains(msg, "broken pipe") {
		t.Errorf("error = %v", err)
	}
	t.Log(msg)
	if entries, _ := os.ReadDir(dest); len(entries) != 0 {
		t.Errorf("left behind in %s: %v", dest, entries)
	}
}

// Local tools get only what they need from nocobot's environment: no
// tokens; the database password only through stdin into the tool.
func TestToolEnvironmentHoldsNoSecrets(t *testing.T) {
	t.Setenv("NOCOBOT_SLACK_BOT_TOKEN", "xoxb-must-not-leak")
	t.Setenv("DB_PASSWORD", "nocobase-secret")
	t.Setenv("LANG", "C.UTF-8")
	var out bytes.Buffer
	r := localRunner{pgBin: "/opt/pg/bin"}
	err := r.run(context.Background(), readPassword+`exec env`, nil, withPassword("the-db-password", nil), &out)
	if err != nil {
		t.Fatal(err)
	}
	env := out.String()
	for _, secret := range []string{"xoxb-must-not-leak", "nocobase-secret", "NOCOBOT_SLACK"} {
		if strings.Contains(env, secret) {
			t.Errorf("the tool's environment holds %q:\n%s", secret, env)
		}
	}
	for _, want := range []string{"PGPASSWORD=the-db-password", "LANG=C.UTF-8", "PATH=/opt/pg/bin:"} {
		if !strings.Contains(env, want) {
			t.Errorf("the tool's environment lacks %q:\n%s", want, env)
		}
	}
}

// Errors of psql that reach a chat are cut to the error line: the DETAIL
// (or the failing command, quoted by the Docker adapter) can hold a row.
func TestToolErrorsAreCutToTheErrorLine(t *testing.T) {
	f := newFixture(t, 1, 5)
	local, err := postgresFromURL(Options{DBURL: f.dbURL, PgBin: testenv.PostgresBin(t)})
	if err != nil {
		t.Fatal(err)
	}
	lc := &localContainers{}
	c := connect(t, f.dbURL)
	var host string
	var port int
	if err := c.QueryRow(context.Background(), "SELECT inet_server_addr()::text, inet_server_port()").Scan(&host, &port); err != nil {
		t.Fatal(err)
	}
	inContainer := postgresInContainer(lc, Options{DBContainer: "db", DBName: c.Config().Database, DBUser: c.Config().User,
		DBHost: strings.TrimSuffix(host, "/32"), DBPort: port})
	const row = "user1@example.com"
	for name, db := range map[string]*postgres{"local": local, "container": inContainer} {
		_, err := db.query(context.Background(), "INSERT INTO users (email) VALUES ('"+row+"')")
		if err == nil {
			t.Fatalf("%s: duplicate accepted", name)
		}
		msg := err.Error()
		if !strings.Contains(msg, `ERROR:  duplicate key value violates unique constraint "users_email_key"`) || strings.Contains(msg, row) {
			t.Errorf("%s: error = %q", name, msg)
		}
	}
	if got := errorLine("psql:<stdin>:12: ERROR:  invalid input syntax for type integer: \"x\"\nCONTEXT:  COPY t, line 3, column id: \"secret row\"\n"); got != `ERROR:  invalid input syntax for type integer: "x"` {
		t.Errorf("errorLine = %q", got)
	}
	if got := errorLine("sh: 1: pg_dump: not found\n"); got != "sh: 1: pg_dump: not found" {
		t.Errorf("errorLine = %q", got)
	}
}

// A restore outlives its caller's deadline (a step timeout) but not its
// caller's cancel.
func TestRestoreHasItsOwnDeadline(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ctx, stop := ownDeadline(parent, time.Hour)
	defer stop()
	<-parent.Done()
	time.Sleep(50 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("the restore ended with its caller's deadline")
	}
	parent2, cancel2 := context.WithCancel(context.Background())
	ctx2, stop2 := ownDeadline(parent2, time.Hour)
	defer stop2()
	cancel2()
	select {
	case <-ctx2.Done():
	case <-time.After(time.Second):
		t.Fatal("a cancelled caller did not stop the restore")
	}
	if !errors.Is(ctx2.Err(), context.Canceled) {
		t.Errorf("err = %v", ctx2.Err())
	}
}
