package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nocobot/nocobot/store"
)

type pinger struct{ err error }

func (p pinger) GetNote(context.Context, string, string) (string, error) { return "", p.err }

// /readyz is 503 with the reason when the store or Slack does not answer.
func TestReadyzFailures(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	slackDown := func(context.Context) error { return errors.New("auth.test: invalid_auth") }
	for _, tt := range []struct {
		st    pinger
		slack func(context.Context) error
		code  int
		body  string
	}{
		{pinger{store.ErrNotFound}, nil, 200, "store: ok\nslack: off\n"},
		{pinger{down}, nil, 503, "store: failed: " + down.Error() + "\nslack: off\n"},
		{pinger{store.ErrNotFound}, slackDown, 503, "store: ok\nslack: failed: auth.test: invalid_auth\n"},
	} {
		rec := httptest.NewRecorder()
		readyHandler(tt.st, tt.slack).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != tt.code || string(body) != tt.body {
			t.Errorf("got %d %q, want %d %q", rec.Code, body, tt.code, tt.body)
		}
	}
}

// The socket fails readiness only once it has been down for the grace.
func TestSocketCheck(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	state := func(since time.Time, why string) func() (time.Time, string) {
		return func() (time.Time, string) { return since, why }
	}
	for _, tt := range []struct {
		name string
		down func() (time.Time, string)
		want string
	}{
		{"http mode", nil, ""},
		{"connected", state(time.Time{}, ""), ""},
		{"reconnecting", state(now.Add(-29*time.Second), "connecting"), ""},
		{"down too long", state(now.Add(-45*time.Second), "cannot connect: internal_error"), "socket mode down for 45s: cannot connect: internal_error"},
	} {
		err := socketCheck(tt.down, socketGrace, now)
		if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && got != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	rec := httptest.NewRecorder()
	slackReady := func(context.Context) error {
		return socketCheck(state(now.Add(-time.Minute), "connecting"), socketGrace, now)
	}
	readyHandler(pinger{store.ErrNotFound}, slackReady).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if body := rec.Body.String(); rec.Code != 503 || body != "store: ok\nslack: failed: socket mode down for 1m0s: connecting\n" {
		t.Errorf("/readyz: %d %q", rec.Code, body)
	}
}
