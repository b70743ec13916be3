package config

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Redis says how nocobot finds the cluster's Redis databases and which of
// their keys are NocoBase's (adapters/redis; docs/configuration.md).
// Without this section, the databases are those the nodes' environment
// names; a cluster whose nodes name none has no Redis.
type Redis struct {
	// None: the cluster has no Redis to reset or save, whatever the
	// nodes' environment says.
	None bool `yaml:"none"`
	// App is NocoBase's app name, the prefix of its keys (default main).
	App string `yaml:"app"`
	// Container is the Redis container: nocobot connects to its address,
	// for URLs whose host only the nodes resolve (a compose service).
	Container string `yaml:"container"`
	// Timeout bounds each Redis call (default 10s).
	Timeout Duration `yaml:"timeout"`
	// Databases name the databases instead of the nodes' environment.
	Databases []RedisDatabase `yaml:"databases"`
	// Keys replaces a role's key patterns; each begins with {app}.
	Keys map[string][]string `yaml:"keys"`
	// Whole lists roles whose database is NocoBase's alone: any key in it
	// without the app's prefix makes nocobot refuse.
	Whole []string `yaml:"whole"`
}

// RedisDatabase is one role's database.
type RedisDatabase struct {
	Role string `yaml:"role"` // cache, queue, lock, pubsub, workerid
	// URL is redis://host:port/db without a password; URLEnv names a
	// variable holding a URL with one.
	URL    string `yaml:"url"`
	URLEnv string `yaml:"url_env"`
}

// RedisRoles are the roles a database may have.
var RedisRoles = []string{"cache", "queue", "lock", "pubsub", "workerid"}

var redisAppRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (r *Redis) validate(f string) error {
	if r.None && (len(r.Databases) > 0 || r.Container != "") {
		return fieldError(f+".none", "set none alone, or name the databases, not both")
	}
	if r.App != "" && !redisAppRE.MatchString(r.App) {
		return fieldError(f+".app", "%q: expected NocoBase's app name (letters, digits, _ and -), e.g. main", r.App)
	}
	roles := "expected " + strings.Join(RedisRoles, ", ")
	for i, d := range r.Databases {
		df := f + ".databases[" + strconv.Itoa(i) + "]"
		if !slices.Contains(RedisRoles, d.Role) {
			return fieldError(df+".role", "%q: %s", d.Role, roles)
		}
		switch {
		case d.URL == "" && d.URLEnv == "":
			return fieldError(df, "expected url (without password) or url_env")
		case d.URL != "" && d.URLEnv != "":
			return fieldError(df, "set either url or url_env, not both")
		case d.URLEnv != "":
			if err := checkEnv(df+".url_env", d.URLEnv, true); err != nil {
				return err
			}
		default:
			u, err := url.Parse(d.URL)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				return fieldError(df+".url", "expected redis://host:port/db")
			}
			if _, has := u.User.Password(); has || u.Query().Has("password") {
				return fieldError(df+".url", "holds a password: put the URL in an environment variable and name it in url_env")
			}
		}
	}
	for role, pats := range r.Keys {
		if !slices.Contains(RedisRoles, role) {
			return fieldError(f+".keys", "%q: %s", role, roles)
		}
		for _, p := range pats {
			if !strings.HasPrefix(p, "{app}") {
				return fieldError(f+".keys."+role, "%q: a pattern begins with {app} (e.g. \"{app}:lock:*\"), so that only the app's keys are touched", p)
			}
		}
	}
	for _, role := range r.Whole {
		if !slices.Contains(RedisRoles, role) {
			return fieldError(f+".whole", "%q: %s", role, roles)
		}
	}
	return nil
}
