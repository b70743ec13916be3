package config

import "fmt"

// moveOldKeys reads the keys of older files in their new place: a
// cluster's channel is now slack.channel, access.channels now
// access.slack.channels (channels belong to a front, not to the core).
// Each moved key is a warning; a key set in both places is a problem.
func (c *Config) moveOldKeys(p *problems) {
	move := func(old, now string, both bool) {
		if both {
			p.add(keyRefused(old, "moved to %s, which is set too: keep %s only", now, now))
			return
		}
		at := p.place(old)
		c.Warnings = append(c.Warnings, Problem{Line: at.line, Column: at.col, Path: old,
			Msg: "warning: moved to " + now + "; read as such (write it there)"})
	}
	moveAccess := func(a *Access, f string) {
		if len(a.OldChannels) == 0 {
			return
		}
		move(f+".channels", f+".slack.channels", len(a.Slack.Channels) > 0)
		if len(a.Slack.Channels) == 0 {
			a.Slack.Channels = a.OldChannels
		}
		a.OldChannels = nil
	}
	moveAccess(&c.Access, "access")
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		f := fmt.Sprintf("clusters[%d] (%s)", i, cl.Name)
		if cl.OldChannel != "" {
			move(f+".channel", f+".slack.channel", cl.Slack.Channel != "")
			if cl.Slack.Channel == "" {
				cl.Slack.Channel = cl.OldChannel
			}
			cl.OldChannel = ""
		}
		if cl.Access != nil {
			moveAccess(cl.Access, f+".access")
		}
	}
}
