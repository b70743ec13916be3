package slack

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The app manifest asks for exactly the scopes the front uses and
// points at the front's endpoints.
func TestAppManifest(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/slack-app-manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Features struct {
			AppHome struct {
				HomeTab bool `yaml:"home_tab_enabled"`
			} `yaml:"app_home"`
			SlashCommands []struct {
				Command string `yaml:"command"`
				URL     string `yaml:"url"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
		OAuth struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Interactivity struct {
				Enabled    bool   `yaml:"is_enabled"`
				RequestURL string `yaml:"request_url"`
			} `yaml:"interactivity"`
			SocketMode bool `yaml:"socket_mode_enabled"`
			Events     struct {
				RequestURL string   `yaml:"request_url"`
				BotEvents  []string `yaml:"bot_events"`
			} `yaml:"event_subscriptions"`
		} `yaml:"settings"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	scopes := slices.Sorted(slices.Values(m.OAuth.Scopes.Bot))
	if want := []string{"channels:read", "chat:write", "commands", "files:write", "groups:read", "usergroups:read"}; !slices.Equal(scopes, want) {
		t.Fatalf("scopes %v, want %v", scopes, want)
	}
	if len(m.Features.SlashCommands) != 1 || m.Features.SlashCommands[0].Command != "/nocobase" || !strings.HasSuffix(m.Features.SlashCommands[0].URL, PathCommands) {
		t.Fatalf("slash command: %+v", m.Features.SlashCommands)
	}
	events := slices.Sorted(slices.Values(m.Settings.Events.BotEvents))
	if !m.Features.AppHome.HomeTab || !slices.Equal(events, []string{"app_home_opened", "member_joined_channel"}) || !strings.HasSuffix(m.Settings.Events.RequestURL, PathEvents) {
		t.Fatalf("app home and events: %+v %+v", m.Features.AppHome, m.Settings.Events)
	}
	if !m.Settings.Interactivity.Enabled || !strings.HasSuffix(m.Settings.Interactivity.RequestURL, PathInteractivity) || !m.Settings.SocketMode {
		t.Fatalf("settings: %+v", m.Settings)
	}
}
