package config

import (
	"strings"
	"testing"
)

// The operations endpoint is a host:port.
func TestHTTPListen(t *testing.T) {
	c, err := Parse(strings.NewReader("http: {listen: '127.0.0.1:9090'}\n" + minimal))
	if err != nil || c.HTTP.Listen != "127.0.0.1:9090" {
		t.Fatalf("parsed: %v, %+v", err, c)
	}
	for _, tt := range []struct{ body, want string }{
		{"http: {listen: '9090'}\n", `http.listen: "9090": expected host:port`},
		{"http: {listen: ':http'}\n", `http.listen: ":http": "http" is not a port`},
	} {
		if _, err := Parse(strings.NewReader(tt.body + minimal)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.body, err, tt.want)
		}
	}
}

// Every missing secret of the file at once, one a line, never a value.
func TestCheckSecretsReportsEveryMissingOne(t *testing.T) {
	t.Setenv("NOCOBOT_CT_SET", "s3cret-value")
	body := `
store: {url: 'postgres://nocobot@db/nocobot', password_env: NOCOBOT_CT_STORE}
slack: {mode: off}
clusters:
  - name: prod
    nodes: {labels: {app: nocobase}}
    nocobase: {api_key_env: NOCOBOT_CT_KEY}
    load_balancer: {type: webhook, url: 'http://lb', secret_env: NOCOBOT_CT_SET}
    backup: {destination: /b, database: {container: db, name: nocobase, password_env: NOCOBOT_CT_DB}}
`
	c, err := Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckSecrets()
	want := "store.password_env: environment variable NOCOBOT_CT_STORE is not set\n" +
		"clusters (prod).nocobase.api_key_env: environment variable NOCOBOT_CT_KEY is not set\n" +
		"clusters (prod).backup.database.password_env: environment variable NOCOBOT_CT_DB is not set"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	for _, v := range []string{"NOCOBOT_CT_STORE", "NOCOBOT_CT_KEY", "NOCOBOT_CT_DB"} {
		t.Setenv(v, "x")
	}
	if err := c.CheckSecrets(); err != nil {
		t.Fatalf("every secret set: %v", err)
	}
}
