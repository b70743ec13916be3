package config

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// keys lists the YAML key paths of t's leaves: "store.path",
// "clusters[].nodes.labels".
func keys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, keys(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, keys(ft.Elem(), path+"[].")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

// docKey is a key in the first column of a table row of the reference.
var docKey = regexp.MustCompile("(?m)^\\| `([a-z_\\[\\]\\.\\*]+)` \\|")

// The configuration reference documents every key of Config, and only
// keys that exist: a key added to the types without a line in
// docs/configuration.md fails here.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range docKey.FindAllStringSubmatch(string(b), -1) {
		documented = append(documented, m[1])
	}
	covered := func(k string) bool {
		for _, d := range documented {
			if d == k || strings.HasSuffix(d, ".*") && strings.HasPrefix(k, strings.TrimSuffix(d, "*")) {
				return true
			}
		}
		return false
	}
	all := keys(reflect.TypeFor[Config](), "")
	for _, k := range all {
		if !covered(k) {
			t.Errorf("docs/configuration.md does not document %s", k)
		}
	}
	for _, d := range documented {
		if !slices.ContainsFunc(all, func(k string) bool {
			return k == d || strings.HasSuffix(d, ".*") && strings.HasPrefix(k, strings.TrimSuffix(d, "*"))
		}) {
			t.Errorf("docs/configuration.md documents %s, which is not a key", d)
		}
	}
	if len(documented) == 0 {
		t.Fatal("no keys found in docs/configuration.md")
	}
}

// docRow is a table row of the reference: its key and its meaning.
var docRow = regexp.MustCompile("(?m)^\\| `([a-z_\\[\\]\\.\\*]+)` \\|(.*)$")

// documentedKeys are the keys the reference's tables document, a
// "clusters[].access.*" row expanded to the access keys not marked
// "top level only".
func documentedKeys(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := docRow.FindAllStringSubmatch(string(b), -1)
	var out []string
	for _, r := range rows {
		prefix, wild := strings.CutSuffix(r[1], ".*")
		if !wild {
			out = append(out, r[1])
			continue
		}
		_, of, _ := strings.Cut(prefix, "].") // clusters[].access → access
		for _, o := range rows {
			if rest, ok := strings.CutPrefix(o[1], of+"."); ok && !strings.Contains(o[2], "top level only") {
				out = append(out, prefix+"."+rest)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no keys found in docs/configuration.md")
	}
	return out
}

// sample is a value of t's YAML kind, so that a key is judged by its
// place, not its value.
func sample(t reflect.Type) any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[Duration]():
		return "1m"
	case t.Kind() == reflect.Int:
		return 1
	case t.Kind() == reflect.Bool:
		return true
	case t.Kind() == reflect.Slice:
		return []string{"x"}
	case t.Kind() == reflect.Map:
		return map[string]string{"x": "U0X"}
	}
	return "x"
}

// typeAt is the Go type of a key path such as clusters[].nodes.port.
func typeAt(t *testing.T, path string) reflect.Type {
	ty := reflect.TypeFor[Config]()
	for seg := range strings.SplitSeq(path, ".") {
		name, list := strings.CutSuffix(seg, "[]")
		if ty.Kind() == reflect.Pointer {
			ty = ty.Elem()
		}
		i, ok := yamlFields(ty)[name]
		if !ok {
			t.Fatalf("%s: no key %s", path, name)
		}
		ty = ty.Field(i).Type
		if list {
			ty = ty.Elem()
		}
	}
	return ty
}

// withKey is the minimal configuration, on a PostgreSQL store (whose
// keys are a superset of the embedded one's), with path set.
func withKey(t *testing.T, path string, v any) string {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(minimal), &doc); err != nil {
		t.Fatal(err)
	}
	doc["store"] = map[string]any{"url": "postgres://nocobot@db/nocobot"}
	var m map[string]any = doc
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		name, list := strings.CutSuffix(seg, "[]")
		if i == len(segs)-1 {
			m[name] = v
			break
		}
		if list {
			items, _ := m[name].([]any)
			if len(items) == 0 {
				items = []any{map[string]any{}}
				m[name] = items
			}
			m = items[0].(map[string]any)
			continue
		}
		next, ok := m[name].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[name] = next
		}
		m = next
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// indexes turns "clusters[0] (prod).nodes" into "clusters[].nodes".
var indexes = regexp.MustCompile(`\[\d+\]( \([^)]*\))?`)

// The reference and the parser agree key by key: each key of the types
// is accepted in its place exactly when a table row documents it there
// (a value may still be refused; the key is not).
func TestReferenceKeysAreAcceptedWhereDocumented(t *testing.T) {
	documented := documentedKeys(t)
	for _, k := range keys(reflect.TypeFor[Config](), "") {
		_, err := Parse(strings.NewReader(withKey(t, k, sample(typeAt(t, k)))))
		accepted := true
		if ps, ok := errors.AsType[*Problems](err); ok {
			for _, p := range ps.List {
				if p.KeyRefused && indexes.ReplaceAllString(p.Path, "[]") == k {
					accepted = false
				}
			}
		}
		switch doc := slices.Contains(documented, k); {
		case accepted && !doc:
			t.Errorf("%s is accepted, but docs/configuration.md does not document it there", k)
		case !accepted && doc:
			t.Errorf("docs/configuration.md documents %s, but config check refuses it: %v", k, err)
		}
	}
}

// yamlBlock is a fenced YAML block, possibly indented inside a list item.
var yamlBlock = regexp.MustCompile("(?ms)^( *)```yaml\n(.*?)^ *```")

// The configurations shown in the README are valid as shown.
func TestReadmeConfigurationIsValid(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range yamlBlock.FindAllStringSubmatch(string(b), -1) {
		if !strings.Contains(m[2], "clusters:") {
			continue
		}
		var body strings.Builder
		for _, line := range strings.SplitAfter(m[2], "\n") {
			body.WriteString(strings.TrimPrefix(line, m[1]))
		}
		if _, err := Parse(strings.NewReader(body.String())); err != nil {
			t.Errorf("README configuration: %v\n%s", err, body.String())
		}
		n++
	}
	if n == 0 {
		t.Fatal("no configuration found in README.md")
	}
}
