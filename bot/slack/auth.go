package slack

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/config"
)

// permission is what someone asks to do.
type permission string

const (
	permRun    permission = "run"    // start, cancel, schedule changes, window clicks
	permDecide permission = "decide" // checkpoint buttons
)

// authorizer answers who may do what, resolving user groups through
// Slack's API with a cache.
type authorizer struct {
	cfg   *config.Config
	calls *caller
	api   *slack.Client
	ttl   time.Duration
	log   zerolog.Logger

	mu     sync.Mutex
	groups map[string]groupMembers
}

type groupMembers struct {
	users   []string
	fetched time.Time
}

func newAuthorizer(cfg *config.Config, calls *caller, api *slack.Client, ttl time.Duration, log zerolog.Logger) *authorizer {
	return &authorizer{cfg: cfg, calls: calls, api: api, ttl: ttl, log: log, groups: map[string]groupMembers{}}
}

// access returns the rules for a cluster ("" or unknown: the defaults).
func (a *authorizer) access(cluster string) config.Access {
	if cl, ok := a.cfg.Cluster(cluster); ok {
		return a.cfg.AccessFor(cl)
	}
	return a.cfg.Access
}

// channelAllowed reports whether the bot obeys commands in a channel:
// a cluster's own channel or one listed under access.channels.
func (a *authorizer) channelAllowed(channel string) bool {
	if slices.Contains(a.cfg.Access.Channels, channel) {
		return true
	}
	for _, cl := range a.cfg.Clusters {
		if cl.Channel == channel {
			return true
		}
		if cl.Access != nil && slices.Contains(cl.Access.Channels, channel) {
			return true
		}
	}
	return false
}

// allowed reports whether user may do p on cluster. Nobody listed means
// nobody may: access is granted, never assumed.
func (a *authorizer) allowed(ctx context.Context, cluster, user string, p permission) bool {
	acc := a.access(cluster)
	pr := acc.Run
	if p == permDecide {
		pr = acc.Decide
	}
	if slices.Contains(pr.Users, user) {
		return true
	}
	for _, g := range pr.Groups {
		if slices.Contains(a.members(ctx, g), user) {
			return true
		}
	}
	return false
}

// members returns a group's members, from the cache while fresh; when
// Slack cannot answer, the last known members (better than locking
// everyone out during an incident), or none.
func (a *authorizer) members(ctx context.Context, group string) []string {
	a.mu.Lock()
	m, ok := a.groups[group]
	a.mu.Unlock()
	if ok && time.Since(m.fetched) < a.ttl {
		return m.users
	}
	var users []string
	err := a.calls.do(ctx, "usergroups.users.list", 3, func(ctx context.Context) error {
		var err error
		users, err = a.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	if err != nil {
		a.log.Warn().Err(err).Str("group", group).Msg("could not resolve a user group; using the last known members")
		return m.users
	}
	a.mu.Lock()
	a.groups[group] = groupMembers{users: users, fetched: time.Now()}
	a.mu.Unlock()
	return users
}
