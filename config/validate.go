package config

// Validation: every field of the file checked, each error naming the
// field and what is expected.

import (
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/window"
)

func checkEnv(field, v string, required bool) error {
	if v == "" {
		if required {
			return fieldError(field, "required: the name of the environment variable that holds the secret")
		}
		return nil
	}
	if !envRE.MatchString(v) {
		return fieldError(field, "%q is not an environment variable name (secrets are never written in this file; name the variable that holds it)", v)
	}
	return nil
}

func (c *Config) validate(p *problems) {
	if c.Store.URL != "" {
		if !strings.HasPrefix(c.Store.URL, "postgres://") && !strings.HasPrefix(c.Store.URL, "postgresql://") {
			p.add(fieldError("store.url", "expected a postgres:// URL"))
		}
		if strings.Contains(strings.SplitN(strings.TrimPrefix(strings.TrimPrefix(c.Store.URL, "postgresql://"), "postgres://"), "@", 2)[0], ":") {
			p.add(fieldError("store.url", "holds a password: put it in an environment variable and name it in store.password_env"))
		}
		if c.Store.Path != "" {
			p.add(fieldError("store", "set either path (embedded) or url (PostgreSQL), not both"))
		}
		// The store may share NocoBase's database: in its own schema a
		// backup leaves it out and a restore never rewinds it; in public
		// it would be restored with NocoBase's tables.
		if strings.EqualFold(c.Store.Schema, "public") {
			p.add(fieldError("store.schema", "%q is where NocoBase's tables live: a restore would rewind nocobot's own records; use a schema of its own (default nocobot)", c.Store.Schema))
		}
	}
	if c.Store.URL == "" {
		// The embedded store has neither: a key read nowhere is a
		// mistake the user should hear of (a url left out?).
		for _, k := range []string{"schema", "password_env"} {
			if p.has("store." + k) {
				p.add(keyRefused("store."+k, "only with store.url (PostgreSQL): the embedded store (store.path) has none"))
			}
		}
	}
	p.add(checkEnv("store.password_env", c.Store.PasswordEnv, false))
	p.add(c.HTTP.validate())
	if len(c.Clusters) == 0 {
		p.add(fieldError("clusters", "at least one cluster is expected"))
	}
	seen := map[string]bool{}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		f := fmt.Sprintf("clusters[%d]", i)
		if !nameRE.MatchString(cl.Name) {
			p.add(fieldError(f+".name", "%q: expected a short name of lower-case letters, digits, - and _", cl.Name))
		}
		f = fmt.Sprintf("clusters[%d] (%s)", i, cl.Name)
		if seen[cl.Name] {
			p.add(fieldError(f+".name", "a cluster of that name comes earlier in the file"))
		}
		seen[cl.Name] = true
		cl.validate(p, f)
	}
	c.validateWebhooks(p)
	c.checkFronts(p)
}

func (cl *Cluster) validate(p *problems, f string) {
	if h := cl.Docker.Host; h != "" && !strings.HasPrefix(h, "unix://") && !strings.HasPrefix(h, "tcp://") && !strings.HasPrefix(h, "npipe://") {
		p.add(fieldError(f+".docker.host", "%q: expected unix:///path/docker.sock or tcp://host:port", h))
	}
	p.add(checkEnv(f+".docker.registry.password_env", cl.Docker.Registry.PasswordEnv, cl.Docker.Registry.Username != ""))
	switch {
	case cl.Kubernetes.Set():
		cl.validateKubernetes(p, f)
	case len(cl.Nodes.Labels) == 0 && cl.Nodes.SwarmService == "":
		p.add(fieldError(f+".nodes", "expected labels (e.g. com.docker.compose.service: app) or swarm_service"))
	case len(cl.Nodes.Labels) > 0 && cl.Nodes.SwarmService != "":
		p.add(fieldError(f+".nodes", "set either labels or swarm_service, not both"))
	}
	if cl.Nodes.Port < 0 || cl.Nodes.Port > 65535 {
		p.add(fieldError(f+".nodes.port", "%d is not a port", cl.Nodes.Port))
	}
	if cl.Nodes.Parallelism < 0 {
		p.add(fieldError(f+".nodes.start_parallelism", "expected 0 (all together) or more"))
	}
	switch cl.Nodes.Migrations {
	case "", "auto", "one-at-a-time":
	case "skip-same-version":
		if cl.Nodes.SwarmService != "" {
			p.add(fieldError(f+".nodes.migrations", "skip-same-version needs an environment per node, which a Swarm service's nodes do not have: use auto or one-at-a-time"))
		}
	default:
		p.add(fieldError(f+".nodes.migrations", "%q: expected auto, skip-same-version or one-at-a-time", cl.Nodes.Migrations))
	}
	for _, v := range cl.Nodes.PerNodeEnv {
		if !envRE.MatchString(v) {
			p.add(fieldError(f+".nodes.per_node_env", "%q is not an environment variable name (expected e.g. APP_PORT)", v))
		}
	}
	if strings.Contains(cl.Image.Repository, ":") && !strings.Contains(cl.Image.Repository[strings.LastIndex(cl.Image.Repository, ":"):], "/") {
		p.add(fieldError(f+".image.repository", "%q: expected a repository without tag, e.g. nocobase/nocobase", cl.Image.Repository))
	}
	switch cl.Image.Pull {
	case "", "always", "missing", "never":
	default:
		p.add(fieldError(f+".image.pull", "%q: expected always, missing or never", cl.Image.Pull))
	}
	p.add(checkEnv(f+".nocobase.api_key_env", cl.NocoBase.APIKeyEnv, false))
	switch cl.LB.Type {
	case "nginx":
		if cl.LB.FlagPath == "" {
			p.add(fieldError(f+".load_balancer.flag_path", "required for nginx: the file whose presence switches to the 503 page"))
		}
	case "webhook":
		if !strings.HasPrefix(cl.LB.URL, "http://") && !strings.HasPrefix(cl.LB.URL, "https://") {
			p.add(fieldError(f+".load_balancer.url", "required for webhook: an http(s) URL"))
		}
	case "kubernetes":
		cl.validateKubernetesLB(p, f)
	case "none":
	case "":
		p.add(fieldError(f+".load_balancer.type", "required: nginx, webhook, kubernetes or none"))
	default:
		p.add(fieldError(f+".load_balancer.type", "%q: expected nginx, webhook, kubernetes or none", cl.LB.Type))
	}
	p.add(checkEnv(f+".load_balancer.secret_env", cl.LB.SecretEnv, false))
	if u := cl.LB.ProbeURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		p.add(fieldError(f+".load_balancer.probe_url", "%q: expected an http(s) URL", u))
	}
	if cl.LB.ProbeTimeout > 0 && cl.LB.ProbeURL == "" {
		p.add(fieldError(f+".load_balancer.probe_timeout", "needs load_balancer.probe_url (the URL whose answer it waits for)"))
	}
	p.add(cl.Redis.validate(f + ".redis"))
	b := cl.Backup
	if b.Destination == "" {
		p.add(fieldError(f+".backup.destination", "required: the folder where backups are written"))
	}
	switch {
	case b.Database.Container == "" && b.Database.URLEnv == "":
		p.add(fieldError(f+".backup.database", "expected container (pg_dump runs inside the database container) or url_env"))
	case b.Database.Container != "" && b.Database.URLEnv != "":
		p.add(fieldError(f+".backup.database", "set either container or url_env, not both"))
	case b.Database.Container != "" && b.Database.Name == "":
		p.add(fieldError(f+".backup.database.name", "required: the NocoBase database name (DB_DATABASE)"))
	}
	switch b.Database.Dialect {
	case "", "postgres", "mysql", "mariadb":
	default:
		p.add(fieldError(f+".backup.database.dialect", "%q: expected postgres, mysql or mariadb (or leave it to the nodes' DB_DIALECT)", b.Database.Dialect))
	}
	p.add(checkEnv(f+".backup.database.password_env", b.Database.PasswordEnv, false))
	p.add(checkEnv(f+".backup.database.url_env", b.Database.URLEnv, false))
	if b.Storage.HostPath != "" && b.Storage.Container != "" {
		p.add(fieldError(f+".backup.storage", "set either container or host_path, not both"))
	}
	if b.KeepLast < 0 {
		p.add(fieldError(f+".backup.keep_last", "expected 0 (keep all) or more"))
	}
	b.validateTuning(p, f+".backup")
	cl.NBData.validate(p, f+".nbdata")
	switch cl.Timeouts.OnCheckpoint {
	case "", "remind", "rollback", "abort":
	default:
		p.add(fieldError(f+".timeouts.on_checkpoint_timeout", "%q: expected remind, rollback or abort", cl.Timeouts.OnCheckpoint))
	}
	if cl.Access != nil {
		// Only the top level's terminal settings are read: a cluster's
		// would be ignored, letting a terminal operator through where
		// the file seems to say otherwise, or the reverse.
		for _, k := range []string{"terminal_users", "trust_terminal"} {
			if p.has(clusterName.ReplaceAllString(f, "") + ".access." + k) {
				p.add(keyRefused(f+".access."+k, "top level only: whom a terminal's operator counts as is the same for every cluster; move it to the top-level access"))
			}
		}
	}
	ids := map[string]bool{}
	for j, w := range cl.Windows {
		wf := fmt.Sprintf("%s.windows[%d]", f, j)
		if !windowRE.MatchString(w.ID) {
			p.add(fieldError(wf+".id", "%q: expected a short id of lower-case letters, digits, - and _", w.ID))
		}
		if ids[w.ID] {
			p.add(fieldError(wf+".id", "%q is used twice", w.ID))
		}
		ids[w.ID] = true
		tz := w.TZ
		if tz == "" {
			tz = "UTC"
		}
		// The scheduler's own parser: the same rules, and no panic on odd
		// input (robfig's ParseStandard panics on "TZ=UTC").
		if _, _, err := window.ParseSpec(w.Cron, tz); err != nil {
			p.add(fieldError(wf, "%v", err))
		}
		if w.Command == "" {
			p.add(fieldError(wf+".command", "required: the procedure and its arguments, e.g. upgrade 1.7.15"))
		}
		switch w.Approval {
		case "", "none", "required":
		default:
			p.add(fieldError(wf+".approval", "%q: expected required or none", w.Approval))
		}
	}
}

// maxBackupJobs bounds a dump's workers: each holds a connection, and
// PostgreSQL allows 100 by default, shared with the nodes.
const maxBackupJobs = 32

// validateTuning checks how backups are taken: dump format, workers,
// compression and the in-server copy.
func (b *Backup) validateTuning(p *problems, f string) {
	if b.Jobs < 0 || b.Jobs > maxBackupJobs {
		p.add(fieldError(f+".jobs", "%d: expected 0 (the CPUs, at most 4) up to %d (each worker holds a database connection)", b.Jobs, maxBackupJobs))
	}
	if l := b.CompressLevel; l != nil && (*l < 1 || *l > 9) {
		if *l == 0 {
			p.add(fieldError(f+".compress_level", "0: expected 1 (fastest) to 9 (smallest); for no compression set compress: never"))
		} else {
			p.add(fieldError(f+".compress_level", "%d: expected 1 (fastest) to 9 (smallest)", *l))
		}
	}
	switch b.DumpFormat {
	case "", "folder", "stream":
	default:
		p.add(fieldError(f+".dump_format", "%q: expected folder or stream", b.DumpFormat))
	}
	switch b.Compress {
	case "", "after", "while", "never":
	default:
		p.add(fieldError(f+".compress", "%q: expected after, while or never", b.Compress))
	}
	if b.DumpFormat == "stream" && b.Compress != "" && b.Compress != "while" {
		p.add(fieldError(f+".compress", "%q: a stream dump (dump_format: stream) is always compressed while written; set while or leave it out", b.Compress))
	}
	if b.KeepCopy && !b.CopyInServer() {
		p.add(fieldError(f+".keep_copy", "true, but in_server_copy is false: there is no in-server copy to keep"))
	}
	if b.CopyWhenSpaceUnknown && !b.CopyInServer() {
		p.add(fieldError(f+".copy_when_space_unknown", "true, but in_server_copy is false: no in-server copy is ever taken"))
	}
}
