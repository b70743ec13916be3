package config

import (
	"slices"
	"strings"
	"testing"
)

// A file of an older layout still loads: a cluster's channel and
// access.channels are read as slack.channel and slack.channels, each
// with a warning by line saying where the key goes now.
func TestMovedKeysLoadWithAWarning(t *testing.T) {
	old := "access: {channels: [COPS]}\n" + strings.Replace(minimal, "name: prod", "name: prod\n    channel: CPROD\n    access: {channels: [CPRODOPS]}", 1)
	c, err := Parse(strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Clusters[0]
	if cl.Slack.Channel != "CPROD" || !slices.Equal(c.Access.Slack.Channels, []string{"COPS"}) || !slices.Equal(cl.Access.Slack.Channels, []string{"CPRODOPS"}) {
		t.Fatalf("old keys not read in their new place: %+v, %+v", cl, c.Access)
	}
	want := []string{
		"f.yaml:1:10: access.channels: warning: moved to access.slack.channels; read as such (write it there)",
		"f.yaml:5:5: clusters[0] (prod).channel: warning: moved to clusters[0] (prod).slack.channel; read as such (write it there)",
		"f.yaml:6:14: clusters[0] (prod).access.channels: warning: moved to clusters[0] (prod).access.slack.channels; read as such (write it there)",
	}
	if got := c.WarningLines("f.yaml"); !slices.Equal(got, want) {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The new layout loads without a warning.
	c, err = Parse(strings.NewReader("access: {slack: {channels: [COPS]}}\n" + strings.Replace(minimal, "name: prod", "name: prod\n    slack: {channel: CPROD}", 1)))
	if err != nil || len(c.Warnings) != 0 || c.Clusters[0].Slack.Channel != "CPROD" {
		t.Fatalf("new layout: %v, %v", err, c.Warnings)
	}
	// Both places: which one was meant is not guessed.
	_, err = Parse(strings.NewReader(strings.Replace(minimal, "name: prod", "name: prod\n    channel: CPROD\n    slack: {channel: CPROD2}", 1)))
	if err == nil || !strings.Contains(err.Error(), "clusters[0] (prod).channel: moved to clusters[0] (prod).slack.channel, which is set too") {
		t.Fatalf("both set: %v", err)
	}
}
