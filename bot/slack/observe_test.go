package slack

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Every failed attempt of a Slack call reaches the hook with the method
// and Slack's error code: a refusal once, a 503 at each retry.
func TestAPIErrorHook(t *testing.T) {
	var mu sync.Mutex
	fails503 := 2
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":false,"error":"channel_not_found"}`))
		})
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			if fails503 > 0 {
				fails503--
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1.2"}`))
		})
	})
	srv.Start()
	defer srv.Stop()
	api := slack.New("xoxb-test", slack.OptionAPIURL(srv.GetAPIURL()))

	var got []string
	c := &apiCalls{log: zerolog.Nop(), timeout: 5 * time.Second, maxBackoff: 10 * time.Millisecond}
	f := &Front{calls: c}
	f.ObserveAPIErrors(func(method, code string) {
		mu.Lock()
		got = append(got, method+" "+code)
		mu.Unlock()
	})
	ctx := context.Background()
	err := c.do(ctx, "chat.postMessage", 3, func(ctx context.Context) error {
		_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("hi", false))
		return err
	})
	if err == nil {
		t.Fatal("a refused post succeeded")
	}
	if err := c.do(ctx, "chat.update", 5, func(ctx context.Context) error {
		_, _, _, err := api.UpdateMessageContext(ctx, "C1", "1.2", slack.MsgOptionText("hi", false))
		return err
	}); err != nil {
		t.Fatalf("update after two 503s: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"chat.postMessage channel_not_found", "chat.update http_503", "chat.update http_503"}
	if len(got) != len(want) {
		t.Fatalf("hook saw %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("hook saw %q, want %q", got, want)
		}
	}
}
