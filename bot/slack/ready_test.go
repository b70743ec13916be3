package slack

import (
	"fmt"
	"testing"
	"time"
)

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
		{"http mode", (&Front{}).SocketDown, ""},
		{"connected", state(time.Time{}, ""), ""},
		{"reconnecting", state(now.Add(-29*time.Second), "connecting"), ""},
		{"down too long", state(now.Add(-45*time.Second), "cannot connect: internal_error"), "socket mode down for 45s: cannot connect: internal_error"},
	} {
		err := socketCheck(tt.down, socketGrace, now)
		if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && got != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// A socket down past the grace makes the front not ready, with the
// reason (what /readyz shows on its slack line).
func TestReadyFollowsTheSocket(t *testing.T) {
	f := &Front{opts: Options{SocketGrace: 30 * time.Second}, socket: &socketState{}}
	f.socket.set(false, "connecting", time.Now().Add(-time.Minute))
	err := f.Ready(t.Context())
	if got := fmt.Sprint(err); got != "socket mode down for 1m0s: connecting" {
		t.Errorf("Ready: %v", err)
	}
}
