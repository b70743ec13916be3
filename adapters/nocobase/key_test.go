package nocobase

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// A refused API key is named by where it comes from, never by its value.
func TestCheckKeyNamesTheVariable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/pm:list" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer good-key" {
			fixed(answer{401, "", bodyInvalidToken})(w, r)
			return
		}
		fixed(answer{200, "", `{"data":[{"name":"map","packageName":"@nocobase/plugin-map","enabled":true}]}`})(w, r)
	}))
	defer srv.Close()
	node := ports.Node{Name: "app-1", URL: srv.URL}
	ctx := context.Background()

	if err := New(Options{APIKey: "good-key", APIKeyEnv: "NB_KEY"}, zerolog.Nop()).CheckKey(ctx, node); err != nil {
		t.Fatalf("accepted key: %v", err)
	}
	err := New(Options{APIKey: "s3cret-wrong", APIKeyEnv: "NB_KEY"}, zerolog.Nop()).CheckKey(ctx, node)
	if err == nil || !strings.Contains(err.Error(), "app-1 refused the NocoBase API key from the environment variable NB_KEY") ||
		strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("refused key: %v", err)
	}
	err = New(Options{}, zerolog.Nop()).CheckKey(ctx, node)
	if err == nil || !strings.Contains(err.Error(), "no NocoBase API key is configured") {
		t.Fatalf("no key: %v", err)
	}
}
