package procedures

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// ProcMaintain is in-app maintenance: scale down to one node (plugin
// changes and the backup plugin's task state live in one node's memory,
// see docs/nocobase.md), take a safety backup, do the work, let a person
// verify, start the others.
const ProcMaintain = "maintain"

func maintainProcedure() procedure {
	return procedure{
		name:       ProcMaintain,
		args:       "[cluster] [plugin enable|disable|add <package>]… [backup] [restore <backup-id>]",
		help:       "scale down to one node for in-app maintenance: the actions given, or a manual window",
		downtime:   "scale-down",
		liveWrites: true,
		parse:      parseMaintain,
		validate:   validateMaintain,
		describe: func(r Request) string {
			if len(r.Actions) == 0 {
				return fmt.Sprintf("maintain %s (manual window)", r.Cluster)
			}
			return fmt.Sprintf("maintain %s: %s", r.Cluster, joinActionNames(r.Actions))
		},
		title: func(r store.Run) string {
			acts := actionsOf(r.Params)
			if len(acts) == 0 {
				return fmt.Sprintf("maintenance of %s (manual window)", r.Cluster)
			}
			return fmt.Sprintf("maintenance of %s: %s", r.Cluster, joinActionNames(acts))
		},
		forward:  maintainSteps,
		rollback: func(*store.Run) []stepDef { return maintainRollbackSteps() },
	}
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

func joinActionNames(acts []MaintAction) string {
	s := make([]string, len(acts))
	for i, a := range acts {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
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

func parseMaintain(req *Request, args []string) error {
	i := 0
	if i < len(args) && !isMaintKeyword(args[i]) {
		if strings.HasPrefix(args[i], "-") {
			return fmt.Errorf("unknown option %s", Typed(args[i]))
		}
		req.Cluster = args[i]
		i++
	}
	for i < len(args) {
		switch strings.ToLower(args[i]) {
		case "plugin":
			if i+2 >= len(args) {
				return errors.New("plugin needs an action and a package, e.g. plugin enable @nocobase/plugin-map")
			}
			act := strings.ToLower(args[i+1])
			if act != "enable" && act != "disable" && act != "add" {
				return fmt.Errorf("plugin %s: expected enable, disable or add", Typed(args[i+1]))
			}
			req.Actions = append(req.Actions, MaintAction{Kind: act, Arg: args[i+2]})
			i += 3
		case "backup":
			req.Actions = append(req.Actions, MaintAction{Kind: "backup"})
			i++
		case "restore":
			if i+1 >= len(args) {
				return errors.New("restore needs a backup id (see backups)")
			}
			req.Actions = append(req.Actions, MaintAction{Kind: "restore", Arg: args[i+1]})
			i += 2
		default:
			return fmt.Errorf("unexpected %s", TypedQ(args[i]))
		}
	}
	return nil
}

func isMaintKeyword(s string) bool {
	switch strings.ToLower(s) {
	case "plugin", "backup", "restore":
		return true
	}
	return false
}

// plugin names as npm packages or NocoBase short names.
var pluginRE = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`)

var backupIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func validateMaintain(r Request) error {
	if r.Version != "" {
		return errors.New("maintain takes no version")
	}
	for _, a := range r.Actions {
		if err := a.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (a MaintAction) validate() error {
	switch a.Kind {
	case "enable", "disable", "add":
		if !pluginRE.MatchString(a.Arg) {
			return fmt.Errorf("plugin %s: %s is not a plugin name (expected e.g. @nocobase/plugin-map or map)", a.Kind, TypedQ(a.Arg))
		}
	case "restore":
		if !backupIDRE.MatchString(a.Arg) {
			return fmt.Errorf("restore: %s is not a backup id (see the list of backups)", TypedQ(a.Arg))
		}
	case "backup":
		if a.Arg != "" {
			return errors.New("backup takes no argument")
		}
	default:
		return fmt.Errorf("unknown maintenance action %s (expected plugin enable|disable|add, backup, restore)", TypedQ(a.Kind))
	}
	return nil
}

func maintainSteps(r *store.Run) []stepDef {
	steps := []stepDef{
		{name: "preflight", title: "Preflight: nodes, backup possible", idempotent: true, do: maintainPreflight},
		{name: "scale-down", title: "Scale down to one node", idempotent: true, do: scaleDown},
		{name: "backup", title: "Back up database and storage, verify the backup", idempotent: true, do: backupStep},
	}
	manual := true
	for i, a := range actionsOf(r.Params) {
		if a.Kind == "backup" {
			manual = false // the backup step above is the action
			continue
		}
		manual = false
		steps = append(steps, actionStep(i, a))
	}
	if manual {
		steps = append(steps, stepDef{name: "manual", title: "Maintenance window: do the work in NocoBase", checkpoint: "manual",
			question: func(env *stepEnv) (string, string) {
				f := env.facts()
				return fmt.Sprintf("%s runs on one node (%s). Do your maintenance in NocoBase now, then press Continue when done.",
					env.clusterName(), f.FirstNode()), f.FirstURL()
			}})
	}
	return append(steps,
		stepDef{name: "verify", title: "Verify checkpoint", checkpoint: "verify", question: func(env *stepEnv) (string, string) {
			f := env.facts()
			return fmt.Sprintf("Check that NocoBase works on %s, then continue (start the other nodes), roll back (restore backup %s) or abort.",
				f.FirstNode(), f.BackupID()), f.FirstURL()
		}},
		stepDef{name: "start-rest", title: "Start the other nodes (never two upgrading at once), each waited healthy", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return startRest(ctx, env, expectation{}) }},
		exportStepDef(),
	)
}

// rollbackToMaintenance is a roll-back's first step: no roll-back stops a
// node while users are sent to it.
func rollbackToMaintenance() stepDef {
	return stepDef{name: "rb-lb-maintenance", title: "Roll back: load balancer to the maintenance page (503)", idempotent: true,
		do: func(ctx context.Context, env *stepEnv) (string, error) {
			return setBalancer(ctx, env, ports.LBMaintenance)
		}}
}

func maintainRollbackSteps() []stepDef {
	return []stepDef{
		rollbackToMaintenance(),
		{name: "rb-stop-nodes", title: "Roll back: stop all app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return stopNodes(ctx, env, "") }},
		{name: "rb-restore", title: "Roll back: restore the database and storage from the safety backup", do: restoreStep,
			skip: func(r *store.Run) bool { return FactsOf(*r).BackupID() == "" }},
		redisResetStepDef("rb-redis-reset", "Roll back: Redis: empty the cache, drop the locks and signals",
			func(r *store.Run) bool { return FactsOf(*r).BackupID() == "" }),
		{name: "rb-start-first", title: "Roll back: start one node, wait until healthy", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				s, err := startAndWait(ctx, env, env.facts().FirstNode(), expectation{})
				return s.String(), err
			}},
		{name: "rb-start-rest", title: "Roll back: start the other nodes (never two upgrading at once), each waited healthy", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return startRest(ctx, env, expectation{}) }},
		{name: "rb-lb-normal", title: "Roll back: load balancer back to the app nodes", idempotent: true,
			do: func(ctx context.Context, env *stepEnv) (string, error) { return setBalancer(ctx, env, ports.LBNormal) }},
	}
}

func actionStep(i int, a MaintAction) stepDef {
	name := fmt.Sprintf("action-%d", i+1)
	switch a.Kind {
	case "restore":
		return stepDef{name: name, title: "Restore backup " + a.Arg, do: func(ctx context.Context, env *stepEnv) (string, error) {
			return restoreAction(ctx, env, a.Arg)
		}}
	default:
		// enable and disable may be repeated; add may not (NocoBase
		// refuses to add a plugin twice), so an interrupted add asks.
		return stepDef{name: name, title: "Plugin " + a.Kind + " " + a.Arg, idempotent: a.Kind != "add",
			do: func(ctx context.Context, env *stepEnv) (string, error) {
				node, _, err := firstNode(ctx, env)
				if err != nil {
					return "", err
				}
				// The one node serving reloads its plugins: until it is
				// healthy again, users get the maintenance page.
				if _, err := setBalancer(ctx, env, ports.LBMaintenance); err != nil {
					return "", err
				}
				if err := env.c.App.Plugin(ctx, node, a.Kind, a.Arg, env.progress); err != nil {
					return "", fmt.Errorf("plugin %s %s on %s: %w", a.Kind, a.Arg, node.Name, err)
				}
				if _, err := setBalancer(ctx, env, ports.LBNormal); err != nil {
					return "", err
				}
				return fmt.Sprintf("%s: plugin %s %sd, node healthy, traffic back", node.Name, a.Arg, a.Kind), nil
			}}
	}
}

func maintainPreflight(ctx context.Context, env *stepEnv) (string, error) {
	nodes, err := listNodes(ctx, env)
	if err != nil {
		return "", err
	}
	recordNodes(env, nodes)
	if nodes, err = runNodes(ctx, env); err != nil {
		return "", err
	}
	if _, err := preflightEnv(ctx, env, nodes); err != nil {
		return "", err
	}
	env.record(func(w factWriter) { w.setFirstNode(nodes[0]) })
	if env.facts().FromVersion() == "" {
		v := currentVersion(ctx, env, nodes)
		env.record(func(w factWriter) { w.setFromVersion(v) })
	}
	for _, a := range actionsOf(env.rn.run.Params) {
		if a.Kind != "restore" {
			continue
		}
		info, err := env.c.Backups.Verify(ctx, a.Arg)
		if err != nil {
			return "", fmt.Errorf("backup %s cannot be restored: %w", a.Arg, err)
		}
		// NocoBase has no downgrade: older code cannot run newer data.
		if from := env.facts().FromVersion(); newerVersion(info.Version, from) {
			return "", fmt.Errorf("backup %s holds NocoBase %s, newer than the %s the nodes run: restoring it would need a downgrade; upgrade to %s first", a.Arg, info.Version, from, info.Version)
		}
	}
	key, err := preflightKey(ctx, env, nodes)
	if err != nil {
		return "", err
	}
	backup, err := preflightBackup(ctx, env, false)
	if err != nil {
		return "", err
	}
	redis, err := preflightRedis(ctx, env)
	if err != nil {
		return "", err
	}
	return joinNonEmpty(fmt.Sprintf("%d nodes; version %s", len(nodes), env.facts().FromVersion()), key, backup, redis), nil
}

// scaleDown leaves exactly the first node running and healthy.
func scaleDown(ctx context.Context, env *stepEnv) (string, error) {
	first, _, err := firstNode(ctx, env)
	if err != nil {
		return "", err
	}
	stopped, err := stopNodes(ctx, env, first.Name)
	if err != nil {
		return "", err
	}
	up, err := startAndWait(ctx, env, first.Name, expectation{})
	if err != nil {
		return "", err
	}
	return stopped + "; " + up.String(), nil
}

// restoreAction restores a chosen backup: traffic goes to the
// maintenance page and the node is stopped so nothing writes while the
// database is replaced; it is started again after, and traffic comes back
// once it is healthy.
func restoreAction(ctx context.Context, env *stepEnv, id string) (string, error) {
	first, _, err := firstNode(ctx, env)
	if err != nil {
		return "", err
	}
	if _, err := setBalancer(ctx, env, ports.LBMaintenance); err != nil {
		return "", err
	}
	if _, err := stopNodes(ctx, env, ""); err != nil {
		return "", err
	}
	if err := restoreBackup(ctx, env, id); err != nil {
		return "", err
	}
	// The cache may hold what the database held before the restore.
	reset, err := redisReset(ctx, env)
	if err != nil {
		return "", err
	}
	up, err := startAndWait(ctx, env, first.Name, expectation{})
	if err != nil {
		return "", err
	}
	if _, err := setBalancer(ctx, env, ports.LBNormal); err != nil {
		return "", err
	}
	return "restored " + id + "; " + reset + "; " + up.String() + "; traffic back", nil
}
