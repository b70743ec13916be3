package slack

import (
	"regexp"
	"strings"
	"sync"
	"time"
)

// socketState is the Socket Mode connection as its client reports it,
// for readiness: down since when, and why.
type socketState struct {
	mu    sync.Mutex
	up    bool
	since time.Time
	why   string
}

// set records the connection up or down at now; since moves only when
// the state changes, so a reconnect that keeps failing stays down since
// its first failure.
func (s *socketState) set(up bool, why string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if up != s.up || s.since.IsZero() {
		s.since = now
	}
	s.up, s.why = up, why
}

// connecting records a connection attempt: down, unless it already is,
// when the reason it went down stays the more useful one.
func (s *socketState) connecting(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up || s.since.IsZero() {
		s.up, s.since, s.why = false, now, "connecting"
	}
}

func (s *socketState) down() (since time.Time, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up || s.since.IsZero() {
		return time.Time{}, ""
	}
	return s.since, s.why
}

// SocketDown reports since when the Socket Mode connection has been down
// and why; zero when it is connected or the front serves HTTP. Slack
// asks clients to reconnect now and then, so a short gap is normal.
func (f *Front) SocketDown() (since time.Time, why string) {
	if f.socket == nil {
		return time.Time{}, ""
	}
	return f.socket.down()
}

// urlQuery is the query of a URL: a Socket Mode URL carries its ticket
// there, which must not reach /readyz.
var urlQuery = regexp.MustCompile(`\?[^\s"']*`)

// oneLine is an error's first line, without URL queries.
func oneLine(err error) string {
	if err == nil {
		return "no error"
	}
	s, _, _ := strings.Cut(slackError(err), "\n")
	return urlQuery.ReplaceAllString(s, "?…")
}
