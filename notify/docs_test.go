package notify_test

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/notify"
)

// docKey is a key in the first column of a row of docs/webhooks.md's
// body table: | `run.id` | …
var docKey = regexp.MustCompile("(?m)^\\| `([a-z_\\.\\*]+)` \\|")

func documentedKeys(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(b), "\n## Body\n")
	body, _, _ = strings.Cut(body, "\n## ")
	var keys []string
	for _, m := range docKey.FindAllStringSubmatch(body, -1) {
		keys = append(keys, m[1])
	}
	return keys
}

// jsonKeys lists the key paths of a struct type's JSON form.
func jsonKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, prefix+name)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}):
			out = append(out, jsonKeys(ft, prefix+name+".")...)
		case ft.Kind() == reflect.Map:
			out = append(out, prefix+name+".*")
		}
	}
	return out
}

// docs/webhooks.md documents exactly the body's keys: a key added,
// renamed or removed without the reference fails here.
func TestReferenceDocumentsTheBody(t *testing.T) {
	doc := documentedKeys(t)
	keys := jsonKeys(reflect.TypeOf(notify.Payload{}), "")
	slices.Sort(doc)
	slices.Sort(keys)
	if !slices.Equal(doc, keys) {
		t.Errorf("docs/webhooks.md documents\n  %v\nthe body has\n  %v", doc, keys)
	}
}

// checkDocumentedKeys fails for a key of a received body that the
// reference does not list.
func checkDocumentedKeys(t *testing.T, body map[string]any) {
	t.Helper()
	doc := documentedKeys(t)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if slices.Contains(doc, prefix+"*") {
				continue
			}
			if !slices.Contains(doc, path) {
				t.Errorf("body key %s is not in docs/webhooks.md", path)
			}
			if sub, ok := v.(map[string]any); ok {
				walk(path+".", sub)
			}
		}
	}
	walk("", body)
}

// The configuration accepts exactly the events notify delivers.
func TestConfigKnowsEveryEvent(t *testing.T) {
	if !slices.Equal(config.WebhookEvents, notify.Events) {
		t.Fatalf("config.WebhookEvents %q, notify.Events %q", config.WebhookEvents, notify.Events)
	}
}
