package procedures

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/store"
)

// ViaScheduler is the Via of a run a maintenance window started, and
// the name the engine decides and audits under for such a run; its
// requester is "scheduler:<window id>".
const ViaScheduler = "scheduler"

// Request asks for a run of a procedure on a cluster.
type Request struct {
	Cluster   string
	Procedure string
	Version   string // upgrade: the target version or tag, e.g. "1.7.14", "1.7.14-full", "latest"
	Image     string // upgrade: any image reference instead of a version
	// SameVersion lets an upgrade move to another image of the version the
	// cluster runs (a rebuilt image, a -full switch).
	SameVersion bool
	// StartDuringVerify, when set, overrides the cluster's setting of the
	// same name for this run (upgrade --start-during-verify or --no-…).
	StartDuringVerify *bool
	Actions           []MaintAction // maintain: automated actions; none means a manual window
	Requester         string        // Slack user id, "terminal:<user>", "scheduler:<window>"
	// OnBehalfOf is, for a run a window starts, the person who approved
	// or scheduled it: the four-eyes rule treats them as its requester.
	OnBehalfOf string
	Via        string // the front ("slack", "terminal") or ViaScheduler
	// DryRun asks for the plan only: Plan shows it, Start refuses it.
	DryRun bool
}

// Validate checks a request's own fields (not the cluster's state).
func (r Request) Validate() error {
	p, ok := lookup(r.Procedure)
	if !ok {
		return fmt.Errorf("unknown procedure %s (expected %s)", TypedQ(r.Procedure), ProcedureNames())
	}
	if err := p.validate(r); err != nil {
		return err
	}
	if r.Requester == "" {
		return errors.New("a request needs a requester")
	}
	return nil
}

// params turns a request into the run's persisted parameters.
func (r Request) params() map[string]string {
	p := map[string]string{}
	if r.Version != "" {
		p["version"] = r.Version
	}
	if r.Image != "" {
		p["image"] = r.Image
	}
	if r.SameVersion {
		p["same_version"] = "yes"
	}
	if len(r.Actions) > 0 {
		s := make([]string, len(r.Actions))
		for i, a := range r.Actions {
			s[i] = a.Kind + " " + a.Arg
		}
		p["actions"] = strings.Join(s, ";")
	}
	if r.OnBehalfOf != "" {
		p["on_behalf_of"] = r.OnBehalfOf
	}
	return p
}

// Responsible is the person who asked for a run, for the four-eyes rule:
// its requester, or for a run a window started the person who approved
// or scheduled the window.
func Responsible(r store.Run) string {
	if p := r.Params["on_behalf_of"]; p != "" {
		return p
	}
	return r.Requester
}

// Describe says what a request does in a few words, e.g. "upgrade prod to 1.7.14".
func (r Request) Describe() string {
	if p, ok := lookup(r.Procedure); ok && p.describe != nil {
		return p.describe(r)
	}
	return fmt.Sprintf("%s %s", r.Procedure, r.Cluster)
}

// target is what an upgrade moves to, as asked.
func (r Request) target() string {
	if r.Image != "" {
		return r.Image
	}
	return r.Version
}
