package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/internal/testenv"
)

// composeEnv is what compose.yaml requires, with stand-in values.
var composeEnv = []string{"APP_KEY=k", "DB_PASSWORD=p", "SLACK_BOT_TOKEN=xoxb-t", "SLACK_APP_TOKEN=xapp-t"}

// TestDockerComposeParses runs Debian's docker-compose (and the compose
// plugin of the docker CLI, where there is one) on compose.yaml.
func TestDockerComposeParses(t *testing.T) {
	ran := false
	for _, argv := range [][]string{{"docker-compose"}, {"docker", "compose"}} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			continue
		}
		if argv[0] == "docker" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := exec.CommandContext(ctx, "docker", "compose", "version").Run()
			cancel()
			if err != nil {
				continue
			}
		}
		ran = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], "-f", "compose.yaml", "config", "--services")...)
		cmd.Env = append(os.Environ(), composeEnv...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s config: %v\n%s", strings.Join(argv, " "), err, out)
		}
		for _, s := range []string{"app-1", "app-2", "app-3", "postgres", "redis", "maintenance-init", "nginx", "nocobot"} {
			if !strings.Contains("\n"+string(out), "\n"+s+"\n") {
				t.Errorf("%s config lists no service %s:\n%s", strings.Join(argv, " "), s, out)
			}
		}
		// A required variable left out is an error, not an empty secret.
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		cmd = exec.CommandContext(ctx, argv[0], append(argv[1:], "-f", "compose.yaml", "config", "--services")...)
		cmd.Env = append(os.Environ(), composeEnv[1:]...)
		out, err = cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "APP_KEY") {
			t.Errorf("%s config without APP_KEY: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	if !ran {
		if os.Getenv("NOCOBOT_TEST_REQUIRE") == "1" {
			t.Fatal("no docker-compose: scripts/test should have installed it")
		}
		t.Skip("needs docker-compose")
	}
}

// nginxTest runs `nginx -t` on nginx/nocobase.conf included the way the
// nginx image includes it, with hosts as the machine's hosts file (in a
// mount namespace of its own, so the machine's file is left alone).
func nginxTest(t *testing.T, hosts string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private /etc/hosts in a mount namespace)")
	}
	bin := testenv.Nginx(t)
	dir := t.TempDir()
	conf, err := filepath.Abs("nginx/nocobase.conf")
	if err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf("pid %[1]s/nginx.pid;\nerror_log %[1]s/error.log;\nevents {}\nhttp {\n    include %[2]s;\n}\n", dir, conf)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	hostsFile := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsFile, []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/hosts && exec "$2" -t -p "$3" -c "$3/nginx.conf"`, "sh", hostsFile, bin, dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestNginxConfig checks the shipped nginx configuration with nginx -t,
// the compose file's node names resolving as nginx's extra_hosts make them
// (here to loopback).
func TestNginxConfig(t *testing.T) {
	c := loadCompose(t)
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for _, h := range c.Services["nginx"].ExtraHosts {
		name, _, _ := strings.Cut(h, ":")
		fmt.Fprintf(&hosts, "127.0.0.1 %s\n", name)
	}
	out, err := nginxTest(t, hosts.String())
	if err != nil || !strings.Contains(out, "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	// Without the names nginx refuses to start, as it did with the old
	// example: this is what the hosts entries are for.
	out, err = nginxTest(t, "127.0.0.1 localhost\n")
	if err == nil || !strings.Contains(out, "host not found in upstream") {
		t.Fatalf("nginx -t without the node names: %v\n%s", err, out)
	}
}
