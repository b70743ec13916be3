package config

// Validation: every field of the file checked, each error naming the
// field and what is expected.

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/nocobot/nocobot/schedule"
)

// fieldError names the field and what is expected.
func fieldError(field, format string, a ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...))
}

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

func (c *Config) validate() error {
	if c.Store.URL != "" {
		if !strings.HasPrefix(c.Store.URL, "postgres://") && !strings.HasPrefix(c.Store.URL, "postgresql://") {
			return fieldError("store.url", "expected a postgres:// URL")
		}
		if strings.Contains(strings.SplitN(strings.TrimPrefix(strings.TrimPrefix(c.Store.URL, "postgresql://"), "postgres://"), "@", 2)[0], ":") {
			return fieldError("store.url", "holds a password: put it in an environment variable and name it in store.password_env")
		}
		if c.Store.Path != "" {
			return fieldError("store", "set either path (embedded) or url (PostgreSQL), not both")
		}
		// The store may share NocoBase's database: in its own schema a
		// backup leaves it out and a restore never rewinds it; in public
		// it would be restored with NocoBase's tables.
		if strings.EqualFold(c.Store.Schema, "public") {
			return fieldError("store.schema", "%q is where NocoBase's tables live: a restore would rewind nocobot's own records; use a schema of its own (default nocobot)", c.Store.Schema)
		}
	}
	if err := checkEnv("store.password_env", c.Store.PasswordEnv, false); err != nil {
		return err
	}
	switch c.Slack.Mode {
	case "", "socket", "http", SlackOff:
	default:
		return fieldError("slack.mode", "%q: expected socket, http or off", c.Slack.Mode)
	}
	if err := c.HTTP.validate(c.Slack); err != nil {
		return err
	}
	for f, v := range map[string]string{"slack.bot_token_env": c.Slack.BotTokenEnv, "slack.app_token_env": c.Slack.AppTokenEnv, "slack.signing_secret_env": c.Slack.SigningSecretEnv} {
		if err := checkEnv(f, v, false); err != nil {
			return err
		}
	}
	if u := c.Slack.APIURL; u != "" {
		p, err := url.Parse(u)
		switch {
		case err == nil && p.User != nil:
			return fieldError("slack.api_url", "holds credentials: a token goes in slack.bot_token_env, never in the URL")
		case err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "":
			return fieldError("slack.api_url", "%q: expected an http(s) URL such as https://slack.com/api/", u)
		}
		if !strings.HasSuffix(u, "/") {
			c.Slack.APIURL = u + "/"
		}
	}
	if c.Slack.Command != "" && !strings.HasPrefix(c.Slack.Command, "/") {
		return fieldError("slack.command", "%q: expected a slash command such as /nocobase", c.Slack.Command)
	}
	if err := c.Access.validate("access"); err != nil {
		return err
	}
	if len(c.Clusters) == 0 {
		return fieldError("clusters", "at least one cluster is expected")
	}
	seen := map[string]bool{}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		f := fmt.Sprintf("clusters[%d]", i)
		if !nameRE.MatchString(cl.Name) {
			return fieldError(f+".name", "%q: expected a short name of lower-case letters, digits, - and _", cl.Name)
		}
		f = fmt.Sprintf("clusters[%d] (%s)", i, cl.Name)
		if seen[cl.Name] {
			return fieldError(f+".name", "a cluster of that name comes earlier in the file")
		}
		seen[cl.Name] = true
		if err := cl.validate(f); err != nil {
			return err
		}
	}
	return nil
}

func (a *Access) validate(f string) error {
	for _, p := range []struct {
		f string
		p Principals
	}{{f + ".run", a.Run}, {f + ".decide", a.Decide}} {
		for _, u := range p.p.Users {
			if !userRE.MatchString(u) {
				return fieldError(p.f+".users", "%q is not a Slack user id (expected e.g. U0123ABCD)", u)
			}
		}
		for _, g := range p.p.Groups {
			if !groupRE.MatchString(g) {
				return fieldError(p.f+".groups", "%q is not a Slack user group id (expected e.g. S0123ABCD)", g)
			}
		}
	}
	for _, ch := range a.Channels {
		if !chanRE.MatchString(ch) {
			return fieldError(f+".channels", "%q is not a Slack channel id (expected e.g. C0123ABCD)", ch)
		}
	}
	return nil
}

func (cl *Cluster) validate(f string) error {
	if cl.Channel != "" && !chanRE.MatchString(cl.Channel) {
		return fieldError(f+".channel", "%q is not a Slack channel id (expected e.g. C0123ABCD; the id, not the #name)", cl.Channel)
	}
	if h := cl.Docker.Host; h != "" && !strings.HasPrefix(h, "unix://") && !strings.HasPrefix(h, "tcp://") && !strings.HasPrefix(h, "npipe://") {
		return fieldError(f+".docker.host", "%q: expected unix:///path/docker.sock or tcp://host:port", h)
	}
	if err := checkEnv(f+".docker.registry.password_env", cl.Docker.Registry.PasswordEnv, cl.Docker.Registry.Username != ""); err != nil {
		return err
	}
	switch {
	case len(cl.Nodes.Labels) == 0 && cl.Nodes.SwarmService == "":
		return fieldError(f+".nodes", "expected labels (e.g. com.docker.compose.service: app) or swarm_service")
	case len(cl.Nodes.Labels) > 0 && cl.Nodes.SwarmService != "":
		return fieldError(f+".nodes", "set either labels or swarm_service, not both")
	}
	if cl.Nodes.Port < 0 || cl.Nodes.Port > 65535 {
		return fieldError(f+".nodes.port", "%d is not a port", cl.Nodes.Port)
	}
	if cl.Nodes.Parallelism < 0 {
		return fieldError(f+".nodes.start_parallelism", "expected 0 (all together) or more")
	}
	if strings.Contains(cl.Image.Repository, ":") && !strings.Contains(cl.Image.Repository[strings.LastIndex(cl.Image.Repository, ":"):], "/") {
		return fieldError(f+".image.repository", "%q: expected a repository without tag, e.g. nocobase/nocobase", cl.Image.Repository)
	}
	switch cl.Image.Pull {
	case "", "always", "missing", "never":
	default:
		return fieldError(f+".image.pull", "%q: expected always, missing or never", cl.Image.Pull)
	}
	if err := checkEnv(f+".nocobase.api_key_env", cl.NocoBase.APIKeyEnv, false); err != nil {
		return err
	}
	switch cl.LB.Type {
	case "nginx":
		if cl.LB.FlagPath == "" {
			return fieldError(f+".load_balancer.flag_path", "required for nginx: the file whose presence switches to the 503 page")
		}
	case "webhook":
		if !strings.HasPrefix(cl.LB.URL, "http://") && !strings.HasPrefix(cl.LB.URL, "https://") {
			return fieldError(f+".load_balancer.url", "required for webhook: an http(s) URL")
		}
	case "none":
	case "":
		return fieldError(f+".load_balancer.type", "required: nginx, webhook or none")
	default:
		return fieldError(f+".load_balancer.type", "%q: expected nginx, webhook or none", cl.LB.Type)
	}
	if err := checkEnv(f+".load_balancer.secret_env", cl.LB.SecretEnv, false); err != nil {
		return err
	}
	if p := cl.LB.ProbeURL; p != "" && !strings.HasPrefix(p, "http://") && !strings.HasPrefix(p, "https://") {
		return fieldError(f+".load_balancer.probe_url", "%q: expected an http(s) URL", p)
	}
	if err := cl.Redis.validate(f + ".redis"); err != nil {
		return err
	}
	b := cl.Backup
	if b.Destination == "" {
		return fieldError(f+".backup.destination", "required: the folder where backups are written")
	}
	switch {
	case b.Database.Container == "" && b.Database.URLEnv == "":
		return fieldError(f+".backup.database", "expected container (pg_dump runs inside the database container) or url_env")
	case b.Database.Container != "" && b.Database.URLEnv != "":
		return fieldError(f+".backup.database", "set either container or url_env, not both")
	case b.Database.Container != "" && b.Database.Name == "":
		return fieldError(f+".backup.database.name", "required: the NocoBase database name (DB_DATABASE)")
	}
	switch b.Database.Dialect {
	case "", "postgres", "mysql", "mariadb":
	default:
		return fieldError(f+".backup.database.dialect", "%q: expected postgres, mysql or mariadb (or leave it to the nodes' DB_DIALECT)", b.Database.Dialect)
	}
	if err := checkEnv(f+".backup.database.password_env", b.Database.PasswordEnv, false); err != nil {
		return err
	}
	if err := checkEnv(f+".backup.database.url_env", b.Database.URLEnv, false); err != nil {
		return err
	}
	if b.Storage.HostPath != "" && b.Storage.Container != "" {
		return fieldError(f+".backup.storage", "set either container or host_path, not both")
	}
	if b.KeepLast < 0 {
		return fieldError(f+".backup.keep_last", "expected 0 (keep all) or more")
	}
	if err := b.validateTuning(f + ".backup"); err != nil {
		return err
	}
	switch cl.Timeouts.OnCheckpoint {
	case "", "remind", "rollback", "abort":
	default:
		return fieldError(f+".timeouts.on_checkpoint_timeout", "%q: expected remind, rollback or abort", cl.Timeouts.OnCheckpoint)
	}
	if cl.Access != nil {
		if err := cl.Access.validate(f + ".access"); err != nil {
			return err
		}
	}
	ids := map[string]bool{}
	for j, w := range cl.Windows {
		wf := fmt.Sprintf("%s.windows[%d]", f, j)
		if !windowRE.MatchString(w.ID) {
			return fieldError(wf+".id", "%q: expected a short id of lower-case letters, digits, - and _", w.ID)
		}
		if ids[w.ID] {
			return fieldError(wf+".id", "%q is used twice", w.ID)
		}
		ids[w.ID] = true
		tz := w.TZ
		if tz == "" {
			tz = "UTC"
		}
		// The scheduler's own parser: the same rules, and no panic on odd
		// input (robfig's ParseStandard panics on "TZ=UTC").
		if _, _, err := schedule.ParseWindowSpec(w.Cron, tz); err != nil {
			return fieldError(wf, "%v", err)
		}
		if w.Command == "" {
			return fieldError(wf+".command", "required: the procedure and its arguments, e.g. upgrade 1.7.15")
		}
		switch w.Approval {
		case "", "none", "required":
		default:
			return fieldError(wf+".approval", "%q: expected required or none", w.Approval)
		}
	}
	return nil
}

// maxBackupJobs bounds a dump's workers: each holds a connection, and
// PostgreSQL allows 100 by default, shared with the nodes.
const maxBackupJobs = 32

// validateTuning checks how backups are taken: dump format, workers,
// compression and the in-server copy.
func (b *Backup) validateTuning(f string) error {
	if b.Jobs < 0 || b.Jobs > maxBackupJobs {
		return fieldError(f+".jobs", "%d: expected 0 (the CPUs, at most 4) up to %d (each worker holds a database connection)", b.Jobs, maxBackupJobs)
	}
	if l := b.CompressLevel; l != nil && (*l < 1 || *l > 9) {
		if *l == 0 {
			return fieldError(f+".compress_level", "0: expected 1 (fastest) to 9 (smallest); for no compression set compress: never")
		}
		return fieldError(f+".compress_level", "%d: expected 1 (fastest) to 9 (smallest)", *l)
	}
	switch b.DumpFormat {
	case "", "folder", "stream":
	default:
		return fieldError(f+".dump_format", "%q: expected folder or stream", b.DumpFormat)
	}
	switch b.Compress {
	case "", "after", "while", "never":
	default:
		return fieldError(f+".compress", "%q: expected after, while or never", b.Compress)
	}
	if b.DumpFormat == "stream" && b.Compress != "" && b.Compress != "while" {
		return fieldError(f+".compress", "%q: a stream dump (dump_format: stream) is always compressed while written; set while or leave it out", b.Compress)
	}
	if b.KeepCopy && !b.CopyInServer() {
		return fieldError(f+".keep_copy", "true, but in_server_copy is false: there is no in-server copy to keep")
	}
	return nil
}
