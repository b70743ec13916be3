// Package config reads nocobot's YAML configuration: the clusters, how to
// reach their nodes, load balancer and backups, who may do what, and the
// timeouts. Secrets are never in the file: it names the environment
// variables that hold them.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "90s", "10m", "2h", or with
// days and weeks, "7d", "2w" (format.ParseDuration).
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
		return errors.New("expected a duration such as 90s, 10m, 2h or 7d")
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole file.
type Config struct {
	Store    Store     `yaml:"store"`
	Slack    Slack     `yaml:"slack"`
	Access   Access    `yaml:"access"` // default for clusters without their own
	Schedule Schedule  `yaml:"schedule"`
	Audit    Audit     `yaml:"audit"`
	HTTP     HTTP      `yaml:"http"`
	Clusters []Cluster `yaml:"clusters"`
	Webhooks []Webhook `yaml:"webhooks"`

	// Warnings are keys read in an older place: the file still loads;
	// each says where the key goes now (WarningLines).
	Warnings []Problem `yaml:"-"`
}

// Store selects the embedded file (path) or PostgreSQL (url).
type Store struct {
	Path string `yaml:"path"` // embedded store file; default ./nocobot.db
	// URL of a PostgreSQL database without password, e.g.
	// postgres://nocobot@db:5432/nocobot; the password comes from PasswordEnv.
	URL         string `yaml:"url"`
	PasswordEnv string `yaml:"password_env"`
	Schema      string `yaml:"schema"` // default "nocobot"
}

// Slack configures the Slack front; package bot/slack checks it (and
// the Slack ids the rules and clusters name) when it is built in.
type Slack struct {
	Mode             string `yaml:"mode"` // "socket" (default), "http" or "off"
	BotTokenEnv      string `yaml:"bot_token_env"`
	AppTokenEnv      string `yaml:"app_token_env"`      // socket mode
	SigningSecretEnv string `yaml:"signing_secret_env"` // http mode
	Listen           string `yaml:"listen"`             // http mode, e.g. ":3000"
	Command          string `yaml:"command"`            // default "/nocobase"
	// APIURL is Slack's Web API base URL, e.g. https://slack-gov.com/api/
	// for GovSlack or a proxy; default Slack's own.
	APIURL string `yaml:"api_url"`
}

// Access says who may run procedures and who may decide checkpoints,
// and where a chat front takes commands.
type Access struct {
	Run      Principals `yaml:"run"`
	Decide   Principals `yaml:"decide"`
	FourEyes bool       `yaml:"four_eyes"` // the requester may not approve their own run
	// Slack: the Slack front's channels.
	Slack AccessSlack `yaml:"slack"`
	// OldChannels is access.channels, read as slack.channels (a
	// warning says it moved).
	OldChannels []string `yaml:"channels"`
	// TerminalUsers maps an operator's OS user name at a terminal to the
	// user id the rules above name (top level only): alice: U123.
	TerminalUsers map[string]string `yaml:"terminal_users"`
	// TrustTerminal lets every operator at a terminal pass the rules and
	// the four-eyes rule (top level only). Off by default.
	TrustTerminal bool `yaml:"trust_terminal"`
}

// AccessSlack is where the Slack front takes commands besides the
// clusters' own channels.
type AccessSlack struct {
	Channels []string `yaml:"channels"` // Slack channel ids
}

// Principals are the people the rules name: user and user-group ids as
// the chat front knows them (Slack: U0123ABCD, S0123ABCD).
type Principals struct {
	Users  []string `yaml:"users"`
	Groups []string `yaml:"groups"`
}

// Empty reports whether nobody is listed.
func (p Principals) Empty() bool { return len(p.Users) == 0 && len(p.Groups) == 0 }

// Schedule configures the maintenance window scheduler.
type Schedule struct {
	// MissedGrace: a window missed while the bot was down still starts if
	// the bot comes back within this time of its start; default 15m.
	MissedGrace Duration `yaml:"missed_grace"`
}

// Audit configures the audit log.
type Audit struct {
	Retention Duration `yaml:"retention"` // default 365 days
}

// Cluster is one NocoBase cluster.
type Cluster struct {
	Name string `yaml:"name"`
	// Slack: the Slack front's channel for the cluster's runs.
	Slack ClusterSlack `yaml:"slack"`
	// OldChannel is the cluster's channel key, read as slack.channel (a
	// warning says it moved).
	OldChannel string `yaml:"channel"`
	Docker     Docker `yaml:"docker"`
	// Kubernetes, instead of Docker: the cluster is a Deployment or
	// StatefulSet (kubernetes.go).
	Kubernetes Kubernetes `yaml:"kubernetes"`
	Nodes      Nodes      `yaml:"nodes"`
	Image      Image      `yaml:"image"`
	NocoBase   NocoBase   `yaml:"nocobase"`
	LB         LB         `yaml:"load_balancer"`
	Backup     Backup     `yaml:"backup"`
	NBData     NBData     `yaml:"nbdata"`
	Redis      Redis      `yaml:"redis"`
	Access     *Access    `yaml:"access"`
	Timeouts   Timeouts   `yaml:"timeouts"`
	Windows    []Window   `yaml:"windows"`
}

// ClusterSlack is the cluster's place in Slack.
type ClusterSlack struct {
	Channel string `yaml:"channel"` // the channel id its runs' threads go to
}

// Docker is how to reach the engine that runs the cluster.
type Docker struct {
	Host     string       `yaml:"host"`      // unix:///var/run/docker.sock, tcp://host:2376; empty: DOCKER_HOST
	CertPath string       `yaml:"cert_path"` // folder with ca.pem, cert.pem, key.pem for TLS; empty: DOCKER_CERT_PATH
	Registry RegistryAuth `yaml:"registry"`
}

// RegistryAuth are credentials for pulling the NocoBase image.
type RegistryAuth struct {
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
}

// Nodes says how the cluster's app nodes are found.
type Nodes struct {
	Labels       map[string]string `yaml:"labels"`        // containers matching all of these
	SwarmService string            `yaml:"swarm_service"` // or a Swarm service
	Network      string            `yaml:"network"`       // network whose address reaches the node
	Port         int               `yaml:"port"`          // NocoBase port on the node; default 13000
	StopTimeout  Duration          `yaml:"stop_timeout"`  // graceful stop before kill; default 30s
	Parallelism  int               `yaml:"start_parallelism"`
	// Migrations: how the nodes after the first start so that no two run
	// NocoBase's upgrade at once: auto (default), skip-same-version or
	// one-at-a-time.
	Migrations string `yaml:"migrations"`
	// StartDuringVerify: an upgrade starts these nodes while its verify
	// checkpoint waits, traffic still on the maintenance page; a run may
	// say otherwise (--start-during-verify, --no-start-during-verify).
	StartDuringVerify bool `yaml:"start_during_verify"`
	// PerNodeEnv names variables that may differ between nodes, besides
	// HOSTNAME, APP_PORT, PM2_HOME, SOCKET_PATH, WORKER_MODE and
	// SKIP_SAME_VERSION_UPGRADE.
	PerNodeEnv []string `yaml:"per_node_env"`
}

// Image is the NocoBase image the nodes run.
type Image struct {
	Repository string `yaml:"repository"` // default: the repository the nodes run now
	TagSuffix  string `yaml:"tag_suffix"` // e.g. "-full"
	// Pull: always, missing or never; empty: missing for exact tags
	// (1.7.14, 1.7.14-full) and digests, always for floating tags (latest, beta…).
	Pull string `yaml:"pull"`
}

// NocoBase is how the bot talks to the app.
type NocoBase struct {
	APIKeyEnv    string   `yaml:"api_key_env"` // API key for plugin actions
	Role         string   `yaml:"role"`        // optional X-Role
	PollInterval Duration `yaml:"poll_interval"`
}

// LB is the load balancer in front of the nodes.
type LB struct {
	Type      string `yaml:"type"`      // "nginx", "webhook", "none"
	FlagPath  string `yaml:"flag_path"` // nginx: the flag file whose presence means 503
	Container string `yaml:"container"` // nginx: container holding the flag; empty: a host path
	URL       string `yaml:"url"`       // webhook: POST target
	SecretEnv string `yaml:"secret_env"`
	ProbeURL  string `yaml:"probe_url"` // public URL checked after each switch
	// ProbeTimeout is how long a switch may take to show at ProbeURL
	// (default 15s): endpoints and ingress controllers may need longer.
	ProbeTimeout Duration `yaml:"probe_timeout"`
	// Kubernetes: the Service switched to the maintenance page.
	Kubernetes KubernetesLB `yaml:"kubernetes"`
}

// Backup says what to back up and where to.
type Backup struct {
	Destination string         `yaml:"destination"`
	Database    BackupDatabase `yaml:"database"`
	Storage     BackupStorage  `yaml:"storage"`
	KeepLast    int            `yaml:"keep_last"`
	MaxAge      Duration       `yaml:"max_age"`

	// Jobs is how many workers a folder dump and its restore run in
	// parallel; 0: the CPUs, at most 4.
	Jobs int `yaml:"jobs"`
	// Compress says when a folder dump is compressed: after (default),
	// while or never.
	Compress string `yaml:"compress"`
	// CompressLevel is the kept dump's compression level, 1 (default) to
	// 9. A pointer, because 0 would mean "no compression" to pg_dump: it
	// is refused rather than read as the default.
	CompressLevel *int   `yaml:"compress_level"`
	DumpFormat    string `yaml:"dump_format"` // folder (default) or stream
	// InServerCopy: absent or true, a backup inside downtime is an
	// in-server copy where the server allows one; false, always a dump.
	InServerCopy *bool `yaml:"in_server_copy"`
	KeepCopy     bool  `yaml:"keep_copy"` // keep the in-server copy after its dump is exported
	// CopyWhenSpaceUnknown: take in-server copies even where the database
	// server's free space cannot be seen (else such a server gets dumps).
	CopyWhenSpaceUnknown bool `yaml:"copy_when_space_unknown"`
}

// CopyInServer reports whether backups may be in-server copies
// (in_server_copy, default true).
func (b *Backup) CopyInServer() bool { return b.InServerCopy == nil || *b.InServerCopy }

// BackupDatabase is the NocoBase database.
type BackupDatabase struct {
	// Dialect is the database engine: postgres, mysql or mariadb. Empty:
	// the url_env URL's scheme, else the nodes' DB_DIALECT.
	Dialect     string `yaml:"dialect"`
	Container   string `yaml:"container"` // run pg_dump inside this container (default way)
	Name        string `yaml:"name"`
	User        string `yaml:"user"`
	PasswordEnv string `yaml:"password_env"`
	// URLEnv names a variable holding a connection string for a local
	// pg_dump (managed databases), instead of Container.
	URLEnv string `yaml:"url_env"`
	PgBin  string `yaml:"pg_bin"` // folder of local pg_dump/pg_restore
	// MySQLBin is the folder of a local mariadb-dump/mariadb (or
	// mysqldump/mysql) for the mysql and mariadb dialects.
	MySQLBin string `yaml:"mysql_bin"`
}

// BackupStorage is NocoBase's storage folder.
type BackupStorage struct {
	Container string `yaml:"container"` // default: the first app node
	Path      string `yaml:"path"`      // default /app/nocobase/storage
	HostPath  string `yaml:"host_path"` // or read it from the host
}

// Timeouts bound every wait.
type Timeouts struct {
	Health     Duration `yaml:"health"`     // one node until healthy; default 10m
	Checkpoint Duration `yaml:"checkpoint"` // verify checkpoint; default 1h
	// OnCheckpoint: "remind" (default), "rollback" or "abort".
	OnCheckpoint string   `yaml:"on_checkpoint_timeout"`
	Step         Duration `yaml:"step"` // any other step; default 2h
}

// Window is a maintenance window declared in the file.
type Window struct {
	ID       string   `yaml:"id"`
	Cron     string   `yaml:"cron"`
	TZ       string   `yaml:"tz"`
	Command  string   `yaml:"command"` // e.g. "upgrade 1.7.15"
	Duration Duration `yaml:"duration"`
	Announce Duration `yaml:"announce"`
	Approval string   `yaml:"approval"` // "required" or "none" (default)
}

// AccessFor returns the cluster's access rules, or the default ones.
func (c *Config) AccessFor(cl *Cluster) Access {
	if cl.Access != nil {
		return *cl.Access
	}
	return c.Access
}

// WarningLines are the warnings one a line, as problems are shown
// (file:line:column: path: warning: …).
func (c *Config) WarningLines(file string) []string {
	return (&Problems{File: file, List: c.Warnings}).Lines()
}

// Cluster finds a cluster by name.
func (c *Config) Cluster(name string) (*Cluster, bool) {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i], true
		}
	}
	return nil, false
}

// ClusterNames are the clusters' names, in the file's order.
func (c *Config) ClusterNames() []string {
	names := make([]string, len(c.Clusters))
	for i, cl := range c.Clusters {
		names[i] = cl.Name
	}
	return names
}

// Load reads and validates a file. A file with problems gives a
// *Problems naming the file and every problem.
func Load(path string) (*Config, error) {
	c, err := Read(path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Read is Load that also returns, beside the problems, the configuration
// as far as it could be read (nil when not even the YAML could be): what
// config check goes on checking.
func Read(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := parse(f)
	if ps, ok := errors.AsType[*Problems](err); ok {
		ps.File = path
		return c, ps
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads and validates a configuration, filling in defaults. A
// configuration with problems gives a *Problems, every one by line.
func Parse(r io.Reader) (*Config, error) {
	c, err := parse(r)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parse(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty: at least one cluster is expected under clusters")
		}
		// Not YAML: nothing further can be read, but the line is known.
		msg := cleanYAMLError(err).Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &Problems{List: []Problem{{Line: line, Msg: "not YAML: " + m[2]}}}
		}
		return nil, errors.New(msg)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w := walker{at: map[string]pos{}}
	var c Config
	if w.walk(root, reflect.TypeFor[Config](), "", "") {
		// What the walk let through decodes; should it not, say so
		// rather than go on with a half-read file.
		if err := root.Decode(&c); err != nil {
			w.found = append(w.found, Problem{Msg: cleanYAMLError(err).Error()})
		}
	}
	p := problems{at: w.at}
	c.moveOldKeys(&p)
	c.validate(&p)
	all := append(w.found, p.list()...)
	if len(all) > 0 {
		// Problems without a place (none expected) come last.
		slices.SortStableFunc(all, func(a, b Problem) int {
			la, lb := a.Line, b.Line
			if la == 0 {
				la = math.MaxInt
			}
			if lb == 0 {
				lb = math.MaxInt
			}
			return cmp.Or(cmp.Compare(la, lb), cmp.Compare(a.Column, b.Column))
		})
		// Defaults too, for config check's further checks.
		c.defaults()
		return &c, &Problems{List: all}
	}
	c.defaults()
	return &c, nil
}

// yamlLine is how the YAML library places a syntax error.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

func cleanYAMLError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = strings.ReplaceAll(msg, " in type config.", " in ")
	return errors.New(msg)
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	envRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	windowRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

func (c *Config) defaults() {
	if c.Store.URL == "" && c.Store.Path == "" {
		c.Store.Path = "nocobot.db"
	}
	if c.Store.Schema == "" {
		c.Store.Schema = "nocobot"
	}
	if c.Schedule.MissedGrace == 0 {
		c.Schedule.MissedGrace = Duration(15 * time.Minute)
	}
	if c.Audit.Retention == 0 {
		c.Audit.Retention = Duration(365 * 24 * time.Hour)
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if cl.Nodes.Port == 0 {
			cl.Nodes.Port = 13000
		}
		if cl.Nodes.StopTimeout == 0 {
			cl.Nodes.StopTimeout = Duration(30 * time.Second)
		}
		if cl.NocoBase.PollInterval == 0 {
			cl.NocoBase.PollInterval = Duration(200 * time.Millisecond)
		}
		if cl.Backup.Storage.Path == "" {
			cl.Backup.Storage.Path = "/app/nocobase/storage"
		}
		if cl.Timeouts.Health == 0 {
			cl.Timeouts.Health = Duration(10 * time.Minute)
		}
		if cl.Timeouts.Checkpoint == 0 {
			cl.Timeouts.Checkpoint = Duration(time.Hour)
		}
		if cl.Timeouts.OnCheckpoint == "" {
			cl.Timeouts.OnCheckpoint = "remind"
		}
		if cl.Timeouts.Step == 0 {
			cl.Timeouts.Step = Duration(2 * time.Hour)
		}
		for j := range cl.Windows {
			if cl.Windows[j].TZ == "" {
				cl.Windows[j].TZ = "UTC"
			}
		}
	}
}

// Secret reads the environment variable a field names; field is used in
// the error, which never contains the value.
func Secret(field, env string) (string, error) {
	if env == "" {
		return "", nil
	}
	v, ok := os.LookupEnv(env)
	if !ok || v == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", field, env)
	}
	return v, nil
}
