package procedures

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// The procedures nocobot runs.
const (
	ProcUpgrade  = "upgrade"
	ProcMaintain = "maintain"
	ProcStart    = "start"
)

// Request asks for a run of a procedure on a cluster.
type Request struct {
	Cluster   string
	Procedure string
	Version   string        // upgrade: the target NocoBase version, e.g. "1.7.14"
	Actions   []MaintAction // maintain: automated actions; none means a manual window
	Requester string        // Slack user id, "terminal:<user>", "scheduler:<window>"
	Via       string        // "slack", "terminal", "scheduler"
}

// MaintAction is one automated action of a maintain run.
type MaintAction struct {
	Kind string // "enable", "disable", "add" (plugins), "backup", "restore"
	Arg  string // plugin package or name, or backup id
}

func (a MaintAction) String() string {
	switch a.Kind {
	case "enable", "disable", "add":
		return "plugin " + a.Kind + " " + a.Arg
	case "restore":
		return "restore " + a.Arg
	}
	return a.Kind
}

// version is what NocoBase publishes: 1.7.14, 2.0.0-beta.12, 1.7.14-full
// (exact versions only: "latest" cannot be verified after the upgrade).
var versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-.][0-9A-Za-z][0-9A-Za-z.-]*)?$`)

// plugin names as npm packages or NocoBase short names.
var pluginRE = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`)

var backupIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateVersion checks that v can be a Docker tag and is an exact version.
func ValidateVersion(v string) error {
	if v == "" {
		return errors.New("a version is needed, e.g. 1.7.14")
	}
	if len(v) > 128 || !versionRE.MatchString(v) {
		return fmt.Errorf("%q is not an exact NocoBase version (expected something like 1.7.14 or 2.0.0-beta.12)", v)
	}
	return nil
}

// Validate checks a request's own fields (not the cluster's state).
func (r Request) Validate() error {
	switch r.Procedure {
	case ProcUpgrade:
		if err := ValidateVersion(r.Version); err != nil {
			return err
		}
		if len(r.Actions) > 0 {
			return errors.New("upgrade takes no maintenance actions")
		}
	case ProcMaintain:
		if r.Version != "" {
			return errors.New("maintain takes no version")
		}
		for _, a := range r.Actions {
			if err := a.validate(); err != nil {
				return err
			}
		}
	case ProcStart:
		if r.Version != "" || len(r.Actions) > 0 {
			return errors.New("start takes no arguments besides the cluster")
		}
	default:
		return fmt.Errorf("unknown procedure %q (expected upgrade, maintain or start)", r.Procedure)
	}
	if r.Requester == "" {
		return errors.New("a request needs a requester")
	}
	return nil
}

func (a MaintAction) validate() error {
	switch a.Kind {
	case "enable", "disable", "add":
		if !pluginRE.MatchString(a.Arg) {
			return fmt.Errorf("plugin %s: %q is not a plugin name (expected e.g. @nocobase/plugin-map or map)", a.Kind, a.Arg)
		}
	case "restore":
		if !backupIDRE.MatchString(a.Arg) {
			return fmt.Errorf("restore: %q is not a backup id (see the list of backups)", a.Arg)
		}
	case "backup":
		if a.Arg != "" {
			return errors.New("backup takes no argument")
		}
	default:
		return fmt.Errorf("unknown maintenance action %q (expected plugin enable|disable|add, backup, restore)", a.Kind)
	}
	return nil
}

// params turns a request into the run's persisted parameters.
func (r Request) params() map[string]string {
	p := map[string]string{}
	if r.Version != "" {
		p["version"] = r.Version
	}
	if len(r.Actions) > 0 {
		s := make([]string, len(r.Actions))
		for i, a := range r.Actions {
			s[i] = a.Kind + " " + a.Arg
		}
		p["actions"] = strings.Join(s, ";")
	}
	return p
}

// actionsOf reads the actions back from a run's parameters.
func actionsOf(params map[string]string) []MaintAction {
	if params["actions"] == "" {
		return nil
	}
	var out []MaintAction
	for _, s := range strings.Split(params["actions"], ";") {
		kind, arg, _ := strings.Cut(s, " ")
		out = append(out, MaintAction{Kind: kind, Arg: arg})
	}
	return out
}

// Describe says what a request does in a few words, e.g. "upgrade prod to 1.7.14".
func (r Request) Describe() string {
	switch r.Procedure {
	case ProcUpgrade:
		return fmt.Sprintf("upgrade %s to %s", r.Cluster, r.Version)
	case ProcMaintain:
		if len(r.Actions) == 0 {
			return fmt.Sprintf("maintain %s (manual window)", r.Cluster)
		}
		s := make([]string, len(r.Actions))
		for i, a := range r.Actions {
			s[i] = a.String()
		}
		return fmt.Sprintf("maintain %s: %s", r.Cluster, strings.Join(s, ", "))
	}
	return fmt.Sprintf("%s %s", r.Procedure, r.Cluster)
}
