package config

// The file is read in two passes that both report everything they find:
// the YAML tree is walked against the Go types (unknown keys, a list
// where a value belongs, "abc" for a port), the offending keys are cut
// out, the rest is decoded and every field validated. A user fixing a
// file sees every problem at once, each with its line.

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nocobot/nocobot/format"
)

// Problem is one thing wrong in the file.
type Problem struct {
	Line, Column int    // 0: not tied to a place in the file
	Path         string // the key, e.g. clusters[0] (prod).nodes.port
	Msg          string
	// KeyRefused: the key is not allowed in this place, whatever its
	// value (unknown, set twice, top level only…).
	KeyRefused bool
}

func (p Problem) String() string {
	s := p.Path + ": " + p.Msg
	if p.Path == "" {
		s = p.Msg
	}
	switch {
	case p.Line > 0 && p.Column > 0:
		return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, s)
	case p.Line > 0:
		return fmt.Sprintf("%d: %s", p.Line, s)
	}
	return s
}

// Problems are every problem found in a file, by line. File, when set,
// starts each line as editors expect: nocobot.yaml:12:5: …
type Problems struct {
	File string
	List []Problem
}

// Lines renders one line per problem.
func (ps *Problems) Lines() []string {
	out := make([]string, len(ps.List))
	for i, p := range ps.List {
		switch {
		case ps.File == "":
			out[i] = p.String()
		case p.Line > 0:
			out[i] = ps.File + ":" + p.String()
		default:
			out[i] = ps.File + ": " + p.String()
		}
	}
	return out
}

func (ps *Problems) Error() string { return strings.Join(ps.Lines(), "\n") }

// fieldErr is a validation error of one key.
type fieldErr struct {
	field, msg string
	key        bool // the key itself is refused here
}

func (e *fieldErr) Error() string { return e.field + ": " + e.msg }

// fieldError names the field and what is expected.
func fieldError(field, format string, a ...any) error {
	return &fieldErr{field: field, msg: fmt.Sprintf(format, a...)}
}

// keyRefused says a key is not allowed where it is, whatever its value.
func keyRefused(field, format string, a ...any) error {
	return &fieldErr{field: field, msg: fmt.Sprintf(format, a...), key: true}
}

// pos is where a key or list item starts.
type pos struct{ line, col int }

// problems collects validation errors and knows where each key is.
type problems struct {
	at   map[string]pos // "clusters[0].nodes.port" → its key's place
	errs []error
}

func (p *problems) add(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

// has reports whether the file sets the key (path without names).
func (p *problems) has(path string) bool {
	_, ok := p.at[path]
	return ok
}

// clusterName is the " (prod)" validation paths carry after clusters[i].
var clusterName = regexp.MustCompile(` \([^)]*\)`)

// place finds the key of a validation error, or its nearest parent
// present in the file (a required key is absent).
func (p *problems) place(field string) pos {
	k := clusterName.ReplaceAllString(field, "")
	for k != "" {
		if at, ok := p.at[k]; ok {
			return at
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return pos{}
}

func (p *problems) list() []Problem {
	out := make([]Problem, 0, len(p.errs))
	for _, err := range p.errs {
		if fe, ok := errors.AsType[*fieldErr](err); ok {
			at := p.place(fe.field)
			out = append(out, Problem{Line: at.line, Column: at.col, Path: fe.field, Msg: fe.msg, KeyRefused: fe.key})
			continue
		}
		out = append(out, Problem{Msg: err.Error()})
	}
	return out
}

// walker checks a YAML tree against the Go types.
type walker struct {
	at    map[string]pos
	found []Problem
}

func (w *walker) problem(n *yaml.Node, path, format string, a ...any) {
	w.found = append(w.found, Problem{Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, a...)})
}

func (w *walker) refuse(k *yaml.Node, path, format string, a ...any) {
	w.problem(k, path, format, a...)
	w.found[len(w.found)-1].KeyRefused = true
}

var durationType = reflect.TypeFor[Duration]()

// yamlFields maps a struct's YAML keys to its field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

// walk checks n against t. key is the path with indexes only (for
// lookups), shown the path with clusters' names (for the user). It
// reports whether n may be decoded into t; the caller cuts it out if not.
func (w *walker) walk(n *yaml.Node, t reflect.Type, key, shown string) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		var d Duration
		if err := d.UnmarshalYAML(n); err != nil {
			w.problem(n, shown, "%v", err)
			return false
		}
		return true
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.problem(n, shown, "expected keys and values here (%s), got %s", keysOf(t), describeNode(n))
			return false
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			sub, subShown := join(key, name), join(shown, name)
			idx, known := fields[name]
			switch {
			case k.Tag == "!!merge":
				// <<: *defaults merges an anchored mapping (or a list
				// of them) into this one: its keys are checked here.
				for _, m := range mergeSources(v) {
					w.walk(m, t, key, shown)
				}
				kept = append(kept, k, v)
				continue
			case !known:
				w.refuse(k, subShown, "unknown key (expected one of: %s)", keysOf(t))
				continue
			case seen[name]:
				w.refuse(k, subShown, "set twice in the same place")
				continue
			}
			seen[name] = true
			w.at[sub] = pos{k.Line, k.Column}
			if w.walk(v, t.Field(idx).Type, sub, subShown) {
				kept = append(kept, k, v)
			}
		}
		n.Content = kept
		return true
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.SequenceNode {
			w.problem(n, shown, "expected a list (- …), got %s", describeNode(n))
			return false
		}
		kept := n.Content[:0:0]
		for i, item := range n.Content {
			sub := fmt.Sprintf("%s[%d]", key, i)
			subShown := fmt.Sprintf("%s[%d]", shown, i)
			if key == "clusters" {
				if name := scalarAt(item, "name"); name != "" {
					subShown += " (" + name + ")"
				}
			}
			w.at[sub] = pos{item.Line, item.Column}
			if w.walk(item, t.Elem(), sub, subShown) {
				kept = append(kept, item)
			}
		}
		n.Content = kept
		return true
	}
	v := reflect.New(t)
	if err := n.Decode(v.Interface()); err != nil {
		w.problem(n, shown, "expected %s, got %s", describeType(t), describeNode(n))
		return false
	}
	return true
}

// mergeSources are the mappings a merge key's value names.
func mergeSources(v *yaml.Node) []*yaml.Node {
	if v.Kind == yaml.SequenceNode {
		return v.Content
	}
	return []*yaml.Node{v}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// scalarAt is a mapping's value at key, if a scalar.
func scalarAt(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

func keysOf(t reflect.Type) string {
	var names []string
	for name := range yamlFields(t) {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a single value"
	case reflect.Slice:
		return "a list of values ([a, b] or - lines)"
	case reflect.Map:
		return "keys and values (name: value)"
	}
	return t.String()
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "keys and values"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// parseDuration is time.ParseDuration without negative values.
func parseDuration(s string) (time.Duration, error) {
	v, err := format.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration (expected e.g. 90s, 10m, 2h, 7d, 2w)", s)
	}
	return v, nil
}
