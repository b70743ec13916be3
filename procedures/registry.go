package procedures

import (
	"context"
	"fmt"
	"strings"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// procedure is everything nocobot knows about one procedure: its words,
// its steps and how it is named. Each lives in its own file; registry
// lists them. A new procedure is one file and one line in registry.
type procedure struct {
	name string
	args string // usage: the words after the name, e.g. "<version> [cluster]"
	// options are usage's options besides --dry-run, e.g. "[--same-version]".
	options string
	help    string // one line for help texts
	// parse reads the words after the name into req (Procedure is set).
	parse func(req *Request, words []string) error
	// validate checks a request's own fields (not the cluster's state).
	validate func(req Request) error
	// describe says what a request does, e.g. "upgrade prod to 1.7.14".
	describe func(req Request) string
	// title names a run, e.g. "upgrade of prod from 1.7.13 to 1.7.14".
	title func(r store.Run) string
	// forward and rollback are the run's steps; rollback may be nil.
	forward  func(r *store.Run) []stepDef
	rollback func(r *store.Run) []stepDef
	// downtime names the forward step that takes the site (or part of
	// it) down: a run interrupted before it asks before beginning it.
	downtime string
	// liveWrites: users keep writing during the run (one node serves),
	// so a roll-back loses writes and no timeout may choose it.
	liveWrites bool
	// plan, when set, adds lines about the target to a plan.
	plan func(ctx context.Context, b *strings.Builder, c *Cluster, nodes []ports.Node, req Request)
}

// registry is the one table of procedures, in the order help lists them.
func registry() []procedure {
	return []procedure{upgradeProcedure(), maintainProcedure(), firstStartProcedure()}
}

func lookup(name string) (procedure, bool) {
	for _, p := range registry() {
		if p.name == name {
			return p, true
		}
	}
	return procedure{}, false
}

// ProcedureNames lists the procedures for messages: "upgrade, maintain or start".
func ProcedureNames() string {
	var names []string
	for _, p := range registry() {
		names = append(names, p.name)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ProcedureHelp is one procedure's line in a help text.
type ProcedureHelp struct {
	Name  string
	Usage string // the name and its words, e.g. "upgrade <version> [cluster] [--dry-run]"
	Help  string
}

// Procedures lists every procedure with its usage, for help texts.
func Procedures() []ProcedureHelp {
	var out []ProcedureHelp
	for _, p := range registry() {
		out = append(out, ProcedureHelp{Name: p.name, Usage: usage(p), Help: p.help})
	}
	return out
}

// IsProcedure reports whether name is a procedure's name.
func IsProcedure(name string) bool {
	_, ok := lookup(name)
	return ok
}

// Usage is a procedure's usage line without any prefix, or "" for an
// unknown name.
func Usage(name string) string {
	p, ok := lookup(name)
	if !ok {
		return ""
	}
	return usage(p)
}

func usage(p procedure) string {
	return strings.TrimSpace(strings.TrimSpace(p.name+" "+p.args) + " [--dry-run] " + p.options)
}

// ParseRequest reads a procedure's words, e.g. ["upgrade", "1.7.14",
// "prod"], into a request, validated. The cluster stays empty when the
// words name none; the caller fills in requester and via.
func ParseRequest(words []string) (Request, error) {
	if len(words) == 0 {
		return Request{}, fmt.Errorf("which procedure? %s", ProcedureNames())
	}
	name := strings.ToLower(words[0])
	p, ok := lookup(name)
	if !ok {
		return Request{}, fmt.Errorf("unknown procedure %s (expected %s)", TypedQ(words[0]), ProcedureNames())
	}
	req := Request{Procedure: name}
	var rest []string
	for _, w := range words[1:] {
		if w == "--dry-run" {
			req.DryRun = true
			continue
		}
		rest = append(rest, w)
	}
	if err := p.parse(&req, rest); err != nil {
		return Request{}, err
	}
	if err := p.validate(req); err != nil {
		return Request{}, err
	}
	return req, nil
}

// ParseCommand splits a procedure's command line (quotes keep spaces) and
// parses it, e.g. the command a maintenance window runs.
func ParseCommand(line string) (Request, error) {
	words, err := SplitWords(line)
	if err != nil {
		return Request{}, err
	}
	return ParseRequest(words)
}

// clusterOnly parses "[cluster]".
func clusterOnly(req *Request, words []string) error {
	switch len(words) {
	case 0:
	case 1:
		if strings.HasPrefix(words[0], "-") {
			return fmt.Errorf("unknown option %s", Typed(words[0]))
		}
		req.Cluster = words[0]
	default:
		return fmt.Errorf("too many arguments: %s", Typed(strings.Join(words[1:], " ")))
	}
	return nil
}

// forwardSteps are a run's steps in order.
func forwardSteps(r *store.Run) []stepDef {
	if p, ok := lookup(r.Procedure); ok {
		return p.forward(r)
	}
	if r.Procedure == procTraffic {
		return []stepDef{trafficStep}
	}
	return nil
}

// rollbackSteps undo a run; none when its procedure cannot be undone.
func rollbackSteps(r *store.Run) []stepDef {
	if p, ok := lookup(r.Procedure); ok && p.rollback != nil {
		return p.rollback(r)
	}
	return nil
}
