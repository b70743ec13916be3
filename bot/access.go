package bot

import (
	"context"
	"slices"

	"github.com/nocobot/nocobot/config"
)

// permission is what someone asks to do.
type permission string

const (
	permRun    permission = "run"    // start, cancel, schedule changes, window decisions
	permDecide permission = "decide" // checkpoint decisions
)

// Groups resolves the user groups the access rules name to their
// members, as the caller's front knows them. A front whose users belong
// to no groups passes none.
type Groups interface {
	Members(ctx context.Context, group string) []string
}

// rules returns the access rules of a cluster ("" or unknown: the defaults).
func (d *Dispatcher) rules(cluster string) config.Access {
	if cl, ok := d.cfg.Cluster(cluster); ok {
		return d.cfg.AccessFor(cl)
	}
	return d.cfg.Access
}

// trusted: a terminal's operator, when the configuration of this
// dispatcher trusts the terminal (whoever can read the configuration and
// the store can run procedures by hand anyway).
func (d *Dispatcher) trusted(who Caller) bool {
	return d.trustTerminal && who.Via == ViaTerminal
}

// Channels is what a chat front knows of its channels: which it obeys
// and which cluster each is bound to. The front reads them from its own
// part of the configuration; a terminal has none.
type Channels interface {
	// Obeys reports whether commands are taken in the channel.
	Obeys(channel string) bool
	// ClusterOf names the cluster bound to the channel, "" if none.
	ClusterOf(channel string) string
}

// inObeyedChannel: a chat caller must write in a channel its front
// obeys; a terminal has no channels.
func (d *Dispatcher) inObeyedChannel(who Caller) bool {
	if who.Via == ViaTerminal {
		return true
	}
	return who.Channel != "" && who.Channels != nil && who.Channels.Obeys(who.Channel)
}

// allowed reports whether who may do p on cluster. Nobody listed means
// nobody may: access is granted, never assumed.
func (d *Dispatcher) allowed(ctx context.Context, who Caller, cluster string, p permission) bool {
	if d.trusted(who) {
		return true
	}
	acc := d.rules(cluster)
	pr := acc.Run
	if p == permDecide {
		pr = acc.Decide
	}
	if slices.Contains(pr.Users, who.User) {
		return true
	}
	if who.Groups == nil {
		return false
	}
	for _, g := range pr.Groups {
		if slices.Contains(who.Groups.Members(ctx, g), who.User) {
			return true
		}
	}
	return false
}

// fourEyesRefuses: under the four-eyes rule the requester of a run may
// not approve it (rolling back, retrying or aborting stays open to them).
func (d *Dispatcher) fourEyesRefuses(who Caller, cluster, requester string) bool {
	return !d.trusted(who) && d.rules(cluster).FourEyes && who.User == requester
}

// denied is a refusal of access. At a terminal it also says whom the
// operator counts as and which settings grant access there.
func (d *Dispatcher) denied(who Caller, msg string) Text {
	if who.Via != ViaTerminal {
		return T(msg)
	}
	return T(msg, "\nAt this terminal you are ", Person(who.User),
		": map your OS user to the user id the access rules name, under access.terminal_users in the configuration, or set access.trust_terminal: true.")
}
