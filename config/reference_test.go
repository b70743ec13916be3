package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
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
