package slack

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
)

// groups resolves Slack user groups to their members for the access
// rules, with a cache.
type groups struct {
	calls *apiCalls
	api   *slack.Client
	ttl   time.Duration
	log   zerolog.Logger

	mu     sync.Mutex
	cached map[string]groupMembers
}

type groupMembers struct {
	users   []string
	fetched time.Time
}

func newGroups(calls *apiCalls, api *slack.Client, ttl time.Duration, log zerolog.Logger) *groups {
	return &groups{calls: calls, api: api, ttl: ttl, log: log, cached: map[string]groupMembers{}}
}

// Members returns a group's members, from the cache while fresh; when
// Slack cannot answer, the last known members (better than locking
// everyone out during an incident), or none.
func (g *groups) Members(ctx context.Context, group string) []string {
	g.mu.Lock()
	m, ok := g.cached[group]
	g.mu.Unlock()
	if ok && time.Since(m.fetched) < g.ttl {
		return m.users
	}
	var users []string
	err := g.calls.do(ctx, "usergroups.users.list", 3, func(ctx context.Context) error {
		var err error
		users, err = g.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	if err != nil {
		g.log.Warn().Err(err).Str("group", group).Msg("could not resolve a user group; using the last known members")
		return m.users
	}
	g.mu.Lock()
	g.cached[group] = groupMembers{users: users, fetched: time.Now()}
	g.mu.Unlock()
	return users
}
