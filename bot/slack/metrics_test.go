package slack_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	slackfront "github.com/nocobot/nocobot/bot/slack"
	"github.com/nocobot/nocobot/metrics"
)

// The front's hook counts errors by method and code on /metrics.
func TestSlackAPIErrors(t *testing.T) {
	m := metrics.New("prod")
	c := slackfront.NewAPIErrorCounter()
	if err := m.Register(c.Collector()); err != nil {
		t.Fatal(err)
	}
	// Registering again (a second serve of one app) keeps the counter.
	if err := m.Register(c.Collector()); err != nil {
		t.Fatal(err)
	}
	c.Count("chat.update", "ratelimited")
	c.Count("chat.update", "ratelimited")
	c.Count("chat.postMessage", "channel_not_found")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`nocobot_slack_api_errors_total{error="ratelimited",method="chat.update"} 2`,
		`nocobot_slack_api_errors_total{error="channel_not_found",method="chat.postMessage"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}
