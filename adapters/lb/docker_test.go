package lb

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/docker"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/ports"
)

var _ Containers = (*docker.Engine)(nil)

// TestNginxFlagThroughDockerExec switches a real nginx through a flag file
// written by Docker exec in the "load balancer" container: the container
// and the host nginx share the maintenance folder through a bind mount, as
// nginx's container and its config volume would.
func TestNginxFlagThroughDockerExec(t *testing.T) {
	host := testenv.DockerHost(t)
	_, app := appServer(t)
	ngx := startNginx(t, []string{app})
	lbc := testenv.RunNode(t, host, testenv.NodeSpec{
		Image:  testenv.NodeImage(t, host, "lb"),
		Mounts: []string{ngx.MaintDir + ":/etc/nginx/maintenance"},
	})
	e, err := docker.NewEngine(docker.EngineOptions{Host: host}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	lb, err := NewNginx(NginxOptions{Container: lbc.Name, Probe: ProbeOptions{URL: ngx.URL + "/"}}, e, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	assertApp(t, ngx.URL)
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBNormal {
		t.Fatalf("mode = %s, %v", m, err)
	}
	if err := lb.SetMode(ctx, ports.LBMaintenance); err != nil {
		t.Fatal(err)
	}
	assertMaintenance(t, ngx.URL)
	if _, err := os.Stat(filepath.Join(ngx.MaintDir, "maintenance.on")); err != nil {
		t.Errorf("flag not in the shared folder: %v", err)
	}
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBMaintenance {
		t.Fatalf("mode = %s, %v", m, err)
	}
	if err := lb.SetMode(ctx, ports.LBNormal); err != nil {
		t.Fatal(err)
	}
	assertApp(t, ngx.URL)
	if m, err := lb.Mode(ctx); err != nil || m != ports.LBNormal {
		t.Fatalf("mode = %s, %v", m, err)
	}

	// A stopped balancer container is a clear error, not a silent no-op.
	testenv.Docker(t, host, "stop", "-t", "2", lbc.Name)
	if err := lb.SetMode(ctx, ports.LBMaintenance); err == nil {
		t.Fatal("switch through a stopped container succeeded")
	} else {
		t.Log(err)
	}
}
