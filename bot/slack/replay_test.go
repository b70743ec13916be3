package slack

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// postSigned sends body with the given timestamp and signature headers.
func (h *harness) postSigned(path, body, stamp, sig string) int {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.http.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// A captured request sent again with its signature's hex letters in
// another case still carries the same signature (hex ignores case):
// the replay guard refuses it, and the command runs once.
func TestReplayWithTheSignatureRecased(t *testing.T) {
	h := newHarness(t, "http")
	body := h.commandBody(uRequest, chProd, "status")
	stamp := fmt.Sprint(time.Now().Unix())
	sig := signWith(testSecret, stamp, body)
	if code := h.postSigned(PathCommands, body, stamp, sig); code != http.StatusOK {
		t.Fatalf("first delivery: %d", code)
	}
	upper := "v0=" + strings.ToUpper(strings.TrimPrefix(sig, "v0="))
	if upper == sig {
		t.Fatal("the signature has no letters to change")
	}
	if code := h.postSigned(PathCommands, body, stamp, upper); code != http.StatusUnauthorized {
		t.Fatalf("replay with an upper-cased signature: %d, want 401", code)
	}
	if code := h.postSigned(PathCommands, body, stamp, "V0="+strings.TrimPrefix(upper, "v0=")); code != http.StatusUnauthorized {
		t.Fatalf("replay with an upper-cased prefix: %d, want 401", code)
	}
	h.waitAudit(1)
	time.Sleep(200 * time.Millisecond)
	if es := h.audit(); len(es) != 1 {
		t.Fatalf("the command ran %d times: %+v", len(es), es)
	}
}
