package slack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/store"
)

// sendID writes an envelope with a given id and waits for its ack.
func (s *socket) sendID(id, typ string, payload any) {
	s.t.Helper()
	s.write(map[string]any{"envelope_id": id, "type": typ, "payload": payload, "accepts_response_payload": typ == "slash_commands"})
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ack struct {
		EnvelopeID string `json:"envelope_id"`
	}
	if err := s.conn.ReadJSON(&ack); err != nil || ack.EnvelopeID != id {
		s.t.Fatalf("ack of %s: %q, %v", id, ack.EnvelopeID, err)
	}
}

// Socket Mode checks what HTTP mode checks: an envelope without user or
// channel, or for another slash command, is acked and dropped, never
// audited; an envelope delivered twice is handled once.
func TestSocketModeChecksLikeHTTP(t *testing.T) {
	h := newHarness(t, "socket")
	s := h.socket()
	noUser := slashPayload("", chProd, "upgrade 1.7.14")
	noChannel := slashPayload(uRequest, "", "upgrade 1.7.14")
	other := slashPayload(uRequest, chProd, "upgrade 1.7.14")
	other["command"] = "/otherapp"
	s.sendID("e-nouser", "slash_commands", noUser)
	s.sendID("e-nochannel", "slash_commands", noChannel)
	s.sendID("e-other", "slash_commands", other)
	s.sendID("e-click-nouser", "interactive", clickPayload("", chProd, "1.1", "nocobot.cp.abort", "r1|c1"))
	s.sendID("e-click-nochannel", "interactive", clickPayload(uRequest, "", "1.1", "nocobot.cp.abort", "r1|c1"))
	// Delivered twice: handled once.
	s.sendID("e-status", "slash_commands", slashPayload(uStranger, chProd, "status"))
	s.sendID("e-status", "slash_commands", slashPayload(uStranger, chProd, "status"))
	h.fs.ephemeralTo(uStranger, "*Status of prod*")
	time.Sleep(300 * time.Millisecond)
	es := h.audit()
	if len(es) != 1 || es[0].User != uStranger || es[0].Action != "/nocobase status" {
		t.Fatalf("audit (want only the status, once): %+v", es)
	}
	if runs, _ := h.store.ListRuns(context.Background(), "", 0); len(runs) != 0 {
		t.Fatalf("a refused envelope started %d runs", len(runs))
	}
	if !strings.Contains(h.logs.String(), `slash command \"/otherapp\" is not this bot's /nocobase`) {
		t.Fatalf("the refusal of /otherapp is not logged:\n%s", h.logs.String())
	}
}

func TestHTTPRefusesAnotherCommand(t *testing.T) {
	h := newHarness(t, "http")
	body := strings.Replace(h.commandBody(uRequest, chProd, "upgrade 1.7.14"), "command=%2Fnocobase", "command=%2Fotherapp", 1)
	if code, _ := h.post(PathCommands, body, testSecret, time.Now()); code != http.StatusBadRequest {
		t.Fatalf("/otherapp: %d, want 400", code)
	}
	noChannel := url.Values{"command": {"/nocobase"}, "text": {"status"}, "user_id": {uRequest}}.Encode()
	if code, _ := h.post(PathCommands, noChannel, testSecret, time.Now()); code != http.StatusBadRequest {
		t.Fatalf("no channel: %d, want 400", code)
	}
	time.Sleep(200 * time.Millisecond)
	if es := h.audit(); len(es) != 0 {
		t.Fatalf("audited: %+v", es)
	}
}

// A click is taken only from the run's own channel: an Abort whose
// payload names another channel the bot obeys aborts nothing.
func TestClickFromAnotherChannelRefused(t *testing.T) {
	h := newHarness(t, "http")
	h.command(uRequest, chProd, "upgrade 1.7.14")
	root := h.rootOf(chProd, "Upgrade of prod")
	cp, _ := h.reply(root.TS, "Verify checkpoint")
	run := h.waitState(h.onlyRun().ID, store.StateWaiting)
	v := run.ID + "|" + run.Checkpoint.ID
	h.click(uRequest, chOps, cp.TS, "nocobot.cp.abort", v)
	h.fs.ephemeralTo(uRequest, "That button is not in run "+run.ID+"'s thread; decide in its thread in <#"+chProd+">.")
	time.Sleep(200 * time.Millisecond)
	if r := h.waitState(run.ID, store.StateWaiting); r.Checkpoint == nil {
		t.Fatal("the run moved on")
	}
	if ds, _ := h.store.Decisions(context.Background(), run.ID); len(ds) != 0 {
		t.Fatalf("decisions: %+v", ds)
	}
	var last store.AuditEntry
	for _, e := range h.audit() {
		last = e
	}
	if last.Channel != chOps || !strings.HasPrefix(last.Outcome, "refused: That button is not in run") {
		t.Fatalf("audit: %+v", last)
	}
	h.click(uRequest, chProd, cp.TS, "nocobot.cp.abort", v)
	h.reply(root.TS, "Outcome: *aborted*")
}

// The replay guard lives in the store: a restarted bot, and another
// replica on the same store, refuse a request served already.
func TestReplayRefusedAfterRestartAndByAnotherReplica(t *testing.T) {
	h := newHarness(t, "http")
	body := h.commandBody(uStranger, chProd, "status")
	at := time.Now()
	if code, _ := h.post(PathCommands, body, testSecret, at); code != http.StatusOK {
		t.Fatalf("first delivery: %d", code)
	}
	h.fs.ephemeralTo(uStranger, "*Status of prod*")
	h.stopFront()
	h.startFront()
	if code, _ := h.post(PathCommands, body, testSecret, at); code != http.StatusUnauthorized {
		t.Fatalf("replay after a restart: %d, want 401", code)
	}
	// Another replica: its own front on the same store.
	disp, err := bot.New(bot.Options{Config: h.cfg, Engine: h.eng, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(h.opts, disp, h.eng, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer other.shutdown()
	req := httptest.NewRequest(http.MethodPost, PathCommands, strings.NewReader(body))
	stamp := fmt.Sprint(at.Unix())
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", signWith(testSecret, stamp, body))
	rec := httptest.NewRecorder()
	other.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("replay at another replica: %d, want 401", rec.Code)
	}
	if n := len(h.audit()); n != 1 {
		t.Fatalf("%d audit entries, want 1", n)
	}
}

// An oversized body gets 413, read to the end so the client sees it.
func TestOversizedBody(t *testing.T) {
	h := newHarness(t, "http")
	body := "text=" + strings.Repeat("a", 1<<20)
	req, _ := http.NewRequest(http.MethodPost, h.http.URL+PathCommands, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the client did not get an answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "too large") {
		t.Fatalf("%d %q, want 413", resp.StatusCode, b)
	}
	// The connection stays usable: a valid command right after it works.
	h.command(uStranger, chProd, "status")
	h.fs.ephemeralTo(uStranger, "*Status of prod*")
}
