package slack

import (
	"slices"

	"github.com/nocobot/nocobot/config"
)

// channels is bot.Channels from the Slack keys of the configuration: a
// cluster's own channel (clusters[].slack.channel) and those listed under
// access.slack.channels, for all clusters or one.
type channels struct{ cfg *config.Config }

// Obeys implements bot.Channels.
func (c channels) Obeys(channel string) bool {
	if slices.Contains(c.cfg.Access.Slack.Channels, channel) {
		return true
	}
	for _, cl := range c.cfg.Clusters {
		if cl.Slack.Channel == channel || (cl.Access != nil && slices.Contains(cl.Access.Slack.Channels, channel)) {
			return true
		}
	}
	return false
}

// ClusterOf implements bot.Channels.
func (c channels) ClusterOf(channel string) string {
	for _, cl := range c.cfg.Clusters {
		if cl.Slack.Channel == channel {
			return cl.Name
		}
	}
	return ""
}
