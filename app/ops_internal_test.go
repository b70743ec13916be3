package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/store"
)

type pinger struct{ err error }

// front is a front whose readiness is err.
type front struct{ err error }

func (front) Name() string                  { return "slack" }
func (front) Run(context.Context) error     { return nil }
func (f front) Ready(context.Context) error { return f.err }

func (p pinger) GetNote(context.Context, string, string) (string, error) { return "", p.err }

// /readyz is 503 with the reason when the store or Slack does not answer.
func TestReadyzFailures(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	slackDown := front{errors.New("auth.test: invalid_auth")}
	for _, tt := range []struct {
		st     pinger
		fronts []bot.Front
		off    []string
		code   int
		body   string
	}{
		{pinger{store.ErrNotFound}, nil, []string{"slack"}, 200, "store: ok\nslack: off\n"},
		{pinger{down}, nil, []string{"slack"}, 503, "store: failed: " + down.Error() + "\nslack: off\n"},
		{pinger{store.ErrNotFound}, []bot.Front{front{}}, nil, 200, "store: ok\nslack: ok\n"},
		{pinger{store.ErrNotFound}, []bot.Front{slackDown}, nil, 503, "store: ok\nslack: failed: auth.test: invalid_auth\n"},
	} {
		rec := httptest.NewRecorder()
		readyHandler(tt.st, tt.fronts, tt.off).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != tt.code || string(body) != tt.body {
			t.Errorf("got %d %q, want %d %q", rec.Code, body, tt.code, tt.body)
		}
	}
}
