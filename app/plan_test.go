package app_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/app"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures"
)

// A plan on a real Docker engine for a cluster whose database is given
// by backup.database.url_env, with that variable unset: the nodes are
// listed, and the backup line says the kind is decided when the run
// starts, never reaching for the URL.
func TestPlanReadsNoDatabaseURL(t *testing.T) {
	host := testenv.DockerHost(t)
	img := testenv.NodeImage(t, host, "1.7.13")
	cluster := fmt.Sprintf("plan-%d", os.Getpid())
	testenv.RunNode(t, host, testenv.NodeSpec{Name: cluster + "-app-1", Image: img, Created: true,
		Labels: map[string]string{"nocobot.test.cluster": cluster}})
	os.Unsetenv("NOCOBOT_PLAN_DB_URL")
	cfg := loadConfig(t, `
store: {path: %[1]s/n.db}
clusters:
  - name: prod
    docker: {host: "`+host+`"}
    nodes: {labels: {nocobot.test.cluster: `+cluster+`}}
    load_balancer: {type: none}
    backup: {destination: %[1]s/b, database: {url_env: NOCOBOT_PLAN_DB_URL}}
`)
	p, err := app.NewPlanner(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	plan, err := p.Engine.Plan(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{cluster + "-app-1", "Backup: decided when the run starts (a plan does not read the database URL: backup.database.url_env is a secret)"} {
		if !strings.Contains(plan, want) {
			t.Fatalf("plan lacks %q:\n%s", want, plan)
		}
	}
	if strings.Contains(plan, "nocobot-plan.invalid") {
		t.Fatalf("the stand-in URL shows:\n%s", plan)
	}
}
