package deploy

import (
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nocobot/nocobot/config"
)

// compose is the part of a compose file these tests read.
type compose struct {
	Services map[string]service `yaml:"services"`
	Networks map[string]struct {
		Name string `yaml:"name"`
	} `yaml:"networks"`
	Volumes map[string]any `yaml:"volumes"`
}

type service struct {
	Image         string            `yaml:"image"`
	ContainerName string            `yaml:"container_name"`
	Restart       string            `yaml:"restart"`
	Labels        map[string]string `yaml:"labels"`
	Environment   map[string]string `yaml:"environment"`
	Volumes       []string          `yaml:"volumes"`
	Networks      yaml.Node         `yaml:"networks"`
	ExtraHosts    []string          `yaml:"extra_hosts"`
	GroupAdd      []string          `yaml:"group_add"`
	Command       []string          `yaml:"command"`
	Entrypoint    []string          `yaml:"entrypoint"`
	DependsOn     yaml.Node         `yaml:"depends_on"`
}

// dependsOn maps the services s waits for to their condition.
func (s service) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if s.DependsOn.Kind == yaml.SequenceNode {
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = "service_started"
		}
		return out
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := s.DependsOn.Decode(&m); err != nil {
		t.Fatal(err)
	}
	for n, v := range m {
		out[n] = v.Condition
	}
	return out
}

// networks maps the service's networks to their fixed address ("" if none).
func (s service) networks(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.Networks.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := s.Networks.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = ""
		}
	default:
		var m map[string]struct {
			IPv4 string `yaml:"ipv4_address"`
		}
		if err := s.Networks.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for n, v := range m {
			out[n] = v.IPv4
		}
	}
	return out
}

// mount is one "source:target[:ro]" volume entry.
type mount struct {
	Source, Target string
	ReadOnly       bool
}

func (s service) mounts() []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := mount{Source: parts[0], Target: parts[1]}
		m.ReadOnly = len(parts) > 2 && parts[2] == "ro"
		out = append(out, m)
	}
	return out
}

// mountOf returns the mount holding the path p inside the container
// (the longest target that is p or a parent of it).
func (s service) mountOf(p string) (mount, bool) {
	var best mount
	found := false
	for _, m := range s.mounts() {
		if (p == m.Target || strings.HasPrefix(p, m.Target+"/")) && len(m.Target) >= len(best.Target) {
			best, found = m, true
		}
	}
	return best, found
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// envRef is the variable a compose value such as "${DB_PASSWORD:?…}" takes.
var envRefRE = regexp.MustCompile(`^\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}$`)

func envRef(v string) string {
	m := envRefRE.FindStringSubmatch(v)
	if m == nil {
		return ""
	}
	return m[1]
}

// nginxConf is what the tests read from nginx/nocobase.conf.
type nginxConf struct {
	Upstreams []string // host names of the upstream servers, in order
	Flag      string   // the maintenance flag file
	Page      string   // the maintenance page
}

func loadNginxConf(t *testing.T) nginxConf {
	t.Helper()
	b, err := os.ReadFile("nginx/nocobase.conf")
	if err != nil {
		t.Fatal(err)
	}
	var c nginxConf
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9.-]+):13000\b`).FindAllStringSubmatch(string(b), -1) {
		c.Upstreams = append(c.Upstreams, m[1])
	}
	if m := regexp.MustCompile(`if \(-f (\S+)\)`).FindStringSubmatch(string(b)); m != nil {
		c.Flag = m[1]
	}
	if m := regexp.MustCompile(`alias (\S+);`).FindStringSubmatch(string(b)); m != nil {
		c.Page = m[1]
	}
	if len(c.Upstreams) == 0 || c.Flag == "" || c.Page == "" {
		t.Fatalf("nginx/nocobase.conf: cannot find the upstream servers, the flag or the page: %+v", c)
	}
	return c
}

// TestComposeMatchesNocobotConfig checks deploy/compose.yaml against
// deploy/nocobot.compose.yaml as the bot reads it: every name, label,
// network, volume and path the bot uses is one the compose file creates.
func TestComposeMatchesNocobotConfig(t *testing.T) {
	c := loadCompose(t)
	cfg, err := config.Load("nocobot.compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Clusters) != 1 {
		t.Fatalf("nocobot.compose.yaml: %d clusters, want the compose file's one", len(cfg.Clusters))
	}
	cl := cfg.Clusters[0]
	bot, ok := c.Services["nocobot"]
	if !ok {
		t.Fatal("compose.yaml: no nocobot service")
	}
	byContainer := map[string]string{}
	for name, s := range c.Services {
		if s.ContainerName != "" {
			byContainer[s.ContainerName] = name
		}
		for _, m := range s.mounts() {
			if !strings.HasPrefix(m.Source, ".") && !strings.HasPrefix(m.Source, "/") {
				if _, ok := c.Volumes[m.Source]; !ok {
					t.Errorf("service %s mounts volume %q, which compose.yaml does not declare", name, m.Source)
				}
			}
			if strings.HasPrefix(m.Source, ".") {
				if _, err := os.Stat(m.Source); err != nil {
					t.Errorf("service %s mounts %s: %v", name, m.Source, err)
				}
			}
		}
	}

	// The app nodes: the services carrying every label the bot selects on.
	var nodes []string
	nodeSvc := map[string]service{}
	for _, s := range c.Services {
		match := true
		for k, v := range cl.Nodes.Labels {
			match = match && s.Labels[k] == v
		}
		if match {
			nodes = append(nodes, s.ContainerName)
			nodeSvc[s.ContainerName] = s
		}
	}
	sort.Strings(nodes)
	if len(nodes) != 3 {
		t.Fatalf("nodes.labels %v select %d services (%v), want the three app nodes", cl.Nodes.Labels, len(nodes), nodes)
	}
	network, ok := func() (string, bool) {
		for key, n := range c.Networks {
			if n.Name == cl.Nodes.Network {
				return key, true
			}
		}
		return "", false
	}()
	if !ok {
		t.Fatalf("nodes.network %q is not a network of compose.yaml", cl.Nodes.Network)
	}
	if _, ok := bot.networks(t)[network]; !ok {
		t.Errorf("nocobot is not on %s, where it reaches the nodes", network)
	}
	var appKey string
	for _, n := range nodes {
		s := nodeSvc[n]
		if !strings.HasPrefix(s.Image, cl.Image.Repository+":") {
			t.Errorf("%s runs %s, not the configured repository %s", n, s.Image, cl.Image.Repository)
		}
		if _, ok := s.networks(t)[network]; !ok {
			t.Errorf("%s is not on the network %s", n, network)
		}
		if s.Restart == "always" || s.Restart == "" {
			t.Errorf("%s: restart %q would let Docker start nodes behind the bot's back", n, s.Restart)
		}
		if m, ok := s.mountOf(cl.Backup.Storage.Path); !ok || m.Target != cl.Backup.Storage.Path {
			t.Errorf("%s does not mount the shared storage at %s", n, cl.Backup.Storage.Path)
		} else if _, ok := c.Volumes[m.Source]; !ok {
			t.Errorf("%s's storage is not a shared named volume: %s", n, m.Source)
		}
		env := s.Environment
		if appKey == "" {
			appKey = env["APP_KEY"]
		}
		if env["APP_KEY"] == "" || env["APP_KEY"] != appKey {
			t.Errorf("%s: APP_KEY %q, want one APP_KEY for every node", n, env["APP_KEY"])
		}
		for _, k := range []string{"CACHE_REDIS_URL", "PUBSUB_ADAPTER_REDIS_URL", "LOCK_ADAPTER_REDIS_URL", "QUEUE_ADAPTER_REDIS_URL", "REDIS_URL"} {
			u, err := url.Parse(env[k])
			if err != nil || u.Scheme != "redis" || !strings.HasPrefix(c.Services[u.Hostname()].Image, "redis:") {
				t.Errorf("%s: %s=%q is not a URL of the compose file's Redis", n, k, env[k])
			}
		}
		for k, want := range map[string]string{"CACHE_DEFAULT_STORE": "redis", "LOCK_ADAPTER_DEFAULT": "redis", "QUEUE_ADAPTER": "redis"} {
			if env[k] != want {
				t.Errorf("%s: %s=%q, want %q for cluster mode", n, k, env[k], want)
			}
		}
		if db := c.Services[env["DB_HOST"]]; byContainer[cl.Backup.Database.Container] != env["DB_HOST"] || env["DB_DATABASE"] != cl.Backup.Database.Name ||
			env["DB_USER"] != cl.Backup.Database.User || db.Environment["POSTGRES_DB"] != cl.Backup.Database.Name || envRef(env["DB_PASSWORD"]) != envRef(db.Environment["POSTGRES_PASSWORD"]) {
			t.Errorf("%s: database %s/%s@%s does not match backup.database %+v", n, env["DB_DATABASE"], env["DB_USER"], env["DB_HOST"], cl.Backup.Database)
		}
	}

	// The database the bot backs up.
	dbSvc, ok := byContainer[cl.Backup.Database.Container]
	if !ok || !strings.HasPrefix(c.Services[dbSvc].Image, "postgres:") {
		t.Errorf("backup.database.container %q is not the compose file's PostgreSQL container", cl.Backup.Database.Container)
	}
	if got, want := envRef(bot.Environment[cl.Backup.Database.PasswordEnv]), envRef(c.Services[dbSvc].Environment["POSTGRES_PASSWORD"]); got == "" || got != want {
		t.Errorf("nocobot's %s comes from ${%s}, the database's password from ${%s}", cl.Backup.Database.PasswordEnv, got, want)
	}

	// Every secret the configuration names reaches the bot's environment.
	for field, v := range map[string]string{
		"slack.bot_token_env": cfg.Slack.BotTokenEnv, "slack.app_token_env": cfg.Slack.AppTokenEnv,
		"nocobase.api_key_env": cl.NocoBase.APIKeyEnv, "backup.database.password_env": cl.Backup.Database.PasswordEnv,
	} {
		if _, ok := bot.Environment[v]; v != "" && !ok {
			t.Errorf("%s names %s, which the nocobot service does not set", field, v)
		}
	}

	// The bot's own files live on volumes, its configuration is this file.
	for what, p := range map[string]string{"store.path": cfg.Store.Path, "backup.destination": cl.Backup.Destination} {
		m, ok := bot.mountOf(p)
		if _, named := c.Volumes[m.Source]; !ok || !named || m.ReadOnly {
			t.Errorf("%s %s is not on a writable named volume of the nocobot service", what, p)
		}
	}
	var confTarget string
	for _, m := range bot.mounts() {
		if m.Source == "./nocobot.compose.yaml" {
			confTarget = m.Target
		}
	}
	if confTarget == "" || !slices.Contains(bot.Command, confTarget) {
		t.Errorf("nocobot does not serve with ./nocobot.compose.yaml (mounted at %q, command %v)", confTarget, bot.Command)
	}
	// "docker compose exec nocobot nocobot status" gives no --config: the
	// file is found by NOCOBOT_CONFIG, in the service and in the image.
	if got := bot.Environment["NOCOBOT_CONFIG"]; got != confTarget {
		t.Errorf("the nocobot service sets NOCOBOT_CONFIG=%q; the configuration is mounted at %q", got, confTarget)
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ENV NOCOBOT_CONFIG=` + regexp.QuoteMeta(confTarget) + `$`).Match(df) {
		t.Errorf("the Dockerfile does not set ENV NOCOBOT_CONFIG=%s", confTarget)
	}
	if sock := strings.TrimPrefix(cl.Docker.Host, "unix://"); !slices.ContainsFunc(bot.mounts(), func(m mount) bool { return m.Source == sock && m.Target == sock }) {
		t.Errorf("docker.host %s is not mounted into the nocobot service", cl.Docker.Host)
	}
	if len(bot.GroupAdd) == 0 {
		t.Error("nocobot has no group_add: its non-root user cannot reach the Docker socket")
	}

	// The maintenance switch: the bot writes the flag into a volume that
	// nginx reads at the path its configuration checks.
	ng := loadNginxConf(t)
	nginx := c.Services["nginx"]
	if cl.LB.Type != "nginx" || cl.LB.Container != "" || cl.LB.FlagPath != ng.Flag {
		t.Errorf("load_balancer %+v: want type nginx, the flag %s written by the bot itself", cl.LB, ng.Flag)
	}
	botFlag, ok1 := bot.mountOf(cl.LB.FlagPath)
	nginxFlag, ok2 := nginx.mountOf(ng.Flag)
	if !ok1 || !ok2 || botFlag.Source != nginxFlag.Source || botFlag.ReadOnly || path.Dir(ng.Flag) != botFlag.Target {
		t.Errorf("the flag folder is not one volume shared by nocobot (%+v, writable) and nginx (%+v)", botFlag, nginxFlag)
	}
	// The folder is a fresh volume owned by root: a one-shot service puts
	// the page into it and hands it to the bot's user before either starts.
	if m, ok := nginx.mountOf(ng.Page); !ok || m.Source != nginxFlag.Source {
		t.Errorf("nginx does not serve the page %s from the flag folder's volume", ng.Page)
	}
	prep, ok := c.Services["maintenance-init"]
	prepMount, _ := prep.mountOf(path.Dir(ng.Flag))
	script := strings.Join(prep.Entrypoint, " ")
	if !ok || prepMount.Source != nginxFlag.Source || prepMount.ReadOnly ||
		!slices.ContainsFunc(prep.mounts(), func(m mount) bool { return m.Source == "./nginx/maintenance.html" }) ||
		!strings.Contains(script, " "+ng.Page+" ") || !strings.Contains(script, "chown -R "+dockerfileUID(t)+":"+dockerfileUID(t)+" "+path.Dir(ng.Flag)) {
		t.Errorf("maintenance-init does not put ./nginx/maintenance.html at %s and give %s to the image's user: %q", ng.Page, path.Dir(ng.Flag), script)
	}
	for _, name := range []string{"nginx", "nocobot"} {
		if c.Services[name].dependsOn(t)["maintenance-init"] != "service_completed_successfully" {
			t.Errorf("%s does not wait for maintenance-init to complete", name)
		}
	}
	if !slices.ContainsFunc(nginx.mounts(), func(m mount) bool { return m.Source == "./nginx/nocobase.conf" }) {
		t.Error("nginx does not use ./nginx/nocobase.conf")
	}
	if u, err := url.Parse(cl.LB.ProbeURL); err != nil || c.Services[u.Hostname()].Image != nginx.Image {
		t.Errorf("load_balancer.probe_url %q does not reach the nginx service", cl.LB.ProbeURL)
	}

	// nginx's upstream: the nodes, by names that resolve in nginx to each
	// node's fixed address even while the node is stopped.
	if !slices.Equal(ng.Upstreams, nodes) {
		t.Errorf("nginx upstream %v, want the nodes %v", ng.Upstreams, nodes)
	}
	for _, n := range nodes {
		ip := nodeSvc[n].networks(t)[network]
		if ip == "" || !slices.Contains(nginx.ExtraHosts, n+":"+ip) {
			t.Errorf("nginx's extra_hosts %v lack %s:%s (the node's fixed address)", nginx.ExtraHosts, n, ip)
		}
	}

	// Restart policies: NocoBase's "always" for the services nocobot does
	// not stop.
	for _, name := range []string{"postgres", "redis", "nginx", "nocobot"} {
		if c.Services[name].Restart != "always" {
			t.Errorf("%s: restart %q, want always", name, c.Services[name].Restart)
		}
	}
}

// dockerfileUID is the default of the Dockerfile's NOCOBOT_UID.
func dockerfileUID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ARG NOCOBOT_UID=(\d+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("Dockerfile: no ARG NOCOBOT_UID=<number>")
	}
	return m[1]
}

// TestExampleConfigMatchesNginx checks that deploy/nocobot.example.yaml and
// deploy/nginx agree: the flag file, and node names as docker compose forms
// them from the example's labels (<project>-<service>-<n>).
func TestExampleConfigMatchesNginx(t *testing.T) {
	cfg, err := config.Load("nocobot.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ng := loadNginxConf(t)
	cl := cfg.Clusters[0]
	if cl.LB.FlagPath != ng.Flag {
		t.Errorf("example flag_path %s, nginx checks %s", cl.LB.FlagPath, ng.Flag)
	}
	project, service := cl.Nodes.Labels["com.docker.compose.project"], cl.Nodes.Labels["com.docker.compose.service"]
	for i, u := range ng.Upstreams {
		if want := project + "-" + service + "-" + string(rune('1'+i)); u != want {
			t.Errorf("nginx upstream server %d is %s, the example's node is %s", i+1, u, want)
		}
	}
	if want := project + "-nginx-1"; cl.LB.Container != want {
		t.Errorf("example load_balancer.container %q, want %q", cl.LB.Container, want)
	}
}
