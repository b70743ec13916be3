package bot_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
	"github.com/nocobot/nocobot/store/sqlite"
)

// The dispatcher must take the real engine.
var _ bot.Engine = (*procedures.Engine)(nil)

const (
	chProd    = "CPROD"
	uRequest  = "UREQUEST" // may run and decide
	uApprover = "UAPPROVE" // may decide, through a group
	uStranger = "USTRANGE" // may nothing
	gApprover = "SAPPROVE"
)

// groups is the membership a front would resolve.
type groups map[string][]string

func (g groups) Members(_ context.Context, group string) []string { return g[group] }

type fixture struct {
	t     *testing.T
	disp  *bot.Dispatcher
	eng   *procedures.Engine
	store store.Store
	world *proctest.World
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "n.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	world := proctest.NewWorld("nocobase/nocobase:1.7.13", true, "app-1", "app-2")
	eng, err := procedures.New(procedures.Options{Store: st, Clusters: []*procedures.Cluster{world.Cluster("prod")}, Log: zerolog.Nop(), PollEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	cfg := &config.Config{
		Access: config.Access{
			Run:      config.Principals{Users: []string{uRequest}},
			Decide:   config.Principals{Users: []string{uRequest}, Groups: []string{gApprover}},
			FourEyes: true,
		},
		Clusters: []config.Cluster{{Name: "prod", Slack: config.ClusterSlack{Channel: chProd}}},
	}
	d, err := bot.New(bot.Options{Config: cfg, Engine: eng, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, disp: d, eng: eng, store: st, world: world}
}

func slackUser(id string) bot.Caller {
	return bot.Caller{User: id, Via: bot.ViaSlack, Channel: chProd, Prefix: "/nocobase", Groups: groups{gApprover: {uApprover}},
		Channels: chatChannels{chProd: "prod"}}
}

// chatChannels is a chat front's channels: channel → the cluster bound
// to it.
type chatChannels map[string]string

func (c chatChannels) Obeys(ch string) bool       { _, ok := c[ch]; return ok }
func (c chatChannels) ClusterOf(ch string) string { return c[ch] }

// lastAudit is the newest audit entry.
func (f *fixture) lastAudit() store.AuditEntry {
	f.t.Helper()
	es, err := f.store.Audit(context.Background(), store.AuditQuery{Limit: 1})
	if err != nil || len(es) != 1 {
		f.t.Fatalf("audit: %v, %d entries", err, len(es))
	}
	return es[0]
}

func (f *fixture) waitCheckpoint(id string) store.Run {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := f.store.GetRun(context.Background(), id)
		if err == nil && r.State == store.StateWaiting && r.Checkpoint != nil {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("run %s never waited at a checkpoint", id)
	return store.Run{}
}

func TestAccessRefusedIsAudited(t *testing.T) {
	f := newFixture(t)
	r := f.disp.Command(context.Background(), slackUser(uStranger), "upgrade 1.7.14")
	if r.Outcome.Kind != bot.Refused || r.Started || !strings.Contains(r.Plain(), "You are not allowed to run procedures on prod") {
		t.Fatalf("reply: %+v", r)
	}
	a := f.lastAudit()
	if a.User != uStranger || a.Via != "slack" || a.Channel != chProd || a.Action != "/nocobase upgrade 1.7.14" ||
		a.Outcome != "refused: You are not allowed to run procedures on prod." || a.RunID != "" {
		t.Fatalf("audit entry: %+v", a)
	}
	if runs, _ := f.store.ListRuns(context.Background(), "", 0); len(runs) != 0 {
		t.Fatalf("a refused command started %d runs", len(runs))
	}
}

func TestStartAndBusyAreAuditedWithTheRun(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	started := f.disp.Command(ctx, slackUser(uRequest), "maintain")
	if started.Outcome.Kind != bot.OK || !started.Started || started.RunID == "" || started.Cluster != "prod" {
		t.Fatalf("start reply: %+v", started)
	}
	if a := f.lastAudit(); a.Outcome != "ok" || a.RunID != started.RunID || a.Action != "/nocobase maintain" {
		t.Fatalf("audit of the start: %+v", a)
	}
	f.waitCheckpoint(started.RunID)

	busy := f.disp.Command(ctx, slackUser(uRequest), "upgrade 1.7.14")
	var be *procedures.BusyError
	if busy.Outcome.Kind != bot.Refused || busy.Started || busy.RunID != started.RunID || !errors.As(busy.Err, &be) {
		t.Fatalf("busy reply: %+v", busy)
	}
	if !strings.Contains(busy.Plain(), "Wait for it or /nocobase cancel "+started.RunID) {
		t.Fatalf("busy text: %q", busy.Plain())
	}
	a := f.lastAudit()
	if !strings.HasPrefix(a.Outcome, "refused: prod is busy: run "+started.RunID) || a.RunID != started.RunID {
		t.Fatalf("audit of the busy refusal: %+v", a)
	}
}

func TestFourEyesOnDecisions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	started := f.disp.Command(ctx, slackUser(uRequest), "upgrade 1.7.14")
	run := f.waitCheckpoint(started.RunID)
	if run.Checkpoint.Kind != "verify" {
		t.Fatalf("checkpoint %+v, want the verify checkpoint", run.Checkpoint)
	}
	said := "button continue run " + run.ID + " checkpoint " + run.Checkpoint.ID
	answer := bot.Answer{RunID: run.ID, Checkpoint: run.Checkpoint.ID, Action: store.ActionContinue, Said: said}

	// The requester may not approve their own run.
	r := f.disp.Decide(ctx, slackUser(uRequest), answer)
	if r.Outcome.Kind != bot.Refused || !strings.HasPrefix(r.Plain(), "Four-eyes rule") {
		t.Fatalf("own approval: %+v", r)
	}
	if a := f.lastAudit(); a.Action != said || a.RunID != run.ID || !strings.HasPrefix(a.Outcome, "refused: Four-eyes rule") {
		t.Fatalf("audit of the four-eyes refusal: %+v", a)
	}
	// Someone who may not decide is refused too.
	if r := f.disp.Decide(ctx, slackUser(uStranger), answer); r.Outcome.Kind != bot.Refused {
		t.Fatalf("stranger's decision: %+v", r)
	}
	if ds, _ := f.store.Decisions(ctx, run.ID); len(ds) != 0 {
		t.Fatalf("refused decisions were recorded: %+v", ds)
	}
	// An approver (through the group) decides; a second try is told who came first.
	r = f.disp.Decide(ctx, slackUser(uApprover), answer)
	if r.Outcome.String() != "ok: continue" || r.Decision == nil || r.Decision.By != uApprover {
		t.Fatalf("approver's decision: %+v", r)
	}
	if a := f.lastAudit(); a.Outcome != "ok: continue" || a.RunID != run.ID || a.User != uApprover {
		t.Fatalf("audit of the decision: %+v", a)
	}
	again := f.disp.Decide(ctx, slackUser(uApprover), answer)
	if again.Outcome.Kind != bot.Refused || !errors.Is(again.Err, store.ErrAlreadyDecided) {
		t.Fatalf("second decision: %+v", again)
	}
}

// Four-eyes is about approving the result: the requester of a manual
// maintenance window closes it with Done; the verify checkpoint after it
// is someone else's.
func TestFourEyesLetsTheRequesterCloseAManualWindow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	started := f.disp.Command(ctx, slackUser(uRequest), "maintain")
	run := f.waitCheckpoint(started.RunID)
	if run.Checkpoint.Kind != "manual" {
		t.Fatalf("checkpoint %+v, want the manual window", run.Checkpoint)
	}
	done := f.disp.Decide(ctx, slackUser(uRequest), bot.Answer{RunID: run.ID, Checkpoint: run.Checkpoint.ID, Action: store.ActionContinue})
	if done.Outcome.Kind != bot.OK {
		t.Fatalf("the requester's Done: %+v", done)
	}
	deadline := time.Now().Add(10 * time.Second)
	for run.Checkpoint == nil || run.Checkpoint.Kind != "verify" {
		if time.Now().After(deadline) {
			t.Fatalf("no verify checkpoint after Done: %+v", run)
		}
		time.Sleep(10 * time.Millisecond)
		run, _ = f.store.GetRun(ctx, run.ID)
	}
	own := f.disp.Decide(ctx, slackUser(uRequest), bot.Answer{RunID: run.ID, Checkpoint: run.Checkpoint.ID, Action: store.ActionContinue})
	if own.Outcome.Kind != bot.Refused || !strings.HasPrefix(own.Plain(), "Four-eyes rule") {
		t.Fatalf("the requester approved the result: %+v", own)
	}
}

// A run a window starts is on behalf of whoever approved (or scheduled)
// the window: under four-eyes that person may not approve it.
func TestFourEyesOnAWindowsRun(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	run, err := f.eng.Start(ctx, procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14",
		Requester: "scheduler:nightly", Via: "scheduler", OnBehalfOf: uApprover})
	if err != nil {
		t.Fatal(err)
	}
	run = f.waitCheckpoint(run.ID)
	answer := bot.Answer{RunID: run.ID, Checkpoint: run.Checkpoint.ID, Action: store.ActionContinue}
	if r := f.disp.Decide(ctx, slackUser(uApprover), answer); r.Outcome.Kind != bot.Refused || !strings.HasPrefix(r.Plain(), "Four-eyes rule") {
		t.Fatalf("the window's approver approved its run: %+v", r)
	}
	if r := f.disp.Decide(ctx, slackUser(uRequest), answer); r.Outcome.Kind != bot.OK {
		t.Fatalf("someone else's approval: %+v", r)
	}
}

func TestChannelsAndTheTerminal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	elsewhere := slackUser(uRequest)
	elsewhere.Channel = "CRANDOM"
	if r := f.disp.Command(ctx, elsewhere, "status"); r.Outcome.Kind != bot.Refused || !strings.Contains(r.Plain(), "I don't take commands in this channel") {
		t.Fatalf("command in a channel not obeyed: %+v", r)
	}
	// A terminal has no channel; unless trusted, it is held to the access rules.
	op := bot.Caller{User: "terminal:alice", Via: bot.ViaTerminal, Prefix: "nocobot"}
	if r := f.disp.Command(ctx, op, "start"); r.Outcome.Kind != bot.Refused {
		t.Fatalf("untrusted terminal started a run: %+v", r)
	}
	st := f.disp.Command(ctx, op, "status")
	if st.Outcome.Kind != bot.OK || st.Title != "Status of prod" {
		t.Fatalf("status at the terminal: %+v", st)
	}
	want := []string{"Nodes:", "app-1: running, nocobase/nocobase:1.7.13, version 1.7.13, no health check", "Load balancer: to the app nodes", "Running: nothing", "Latest backup: none", "Next windows: none"}
	for _, w := range want {
		if !strings.Contains(st.Plain(), w) {
			t.Fatalf("status lacks %q:\n%s", w, st.Plain())
		}
	}
	es, _ := f.store.Audit(ctx, store.AuditQuery{})
	slices.Reverse(es)
	var got []string
	for _, e := range es {
		got = append(got, e.Via+" "+e.Action+" → "+e.Outcome)
	}
	if len(got) != 3 || got[2] != "terminal nocobot status → ok" || !strings.HasPrefix(got[1], "terminal nocobot start → refused: You are not allowed") {
		t.Fatalf("audit: %q", got)
	}
}

// decide and audit are a terminal's words of the table: a chat does not
// know them (it answers with buttons), a terminal runs them through the
// same dispatcher, access rules and audit entry as any other command.
func TestTerminalWordsOfTheTable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	started := f.disp.Command(ctx, slackUser(uRequest), "upgrade 1.7.14")
	run := f.waitCheckpoint(started.RunID)
	for _, line := range []string{"decide " + run.ID + " rollback", "audit"} {
		if r := f.disp.Command(ctx, slackUser(uRequest), line); r.Outcome.Kind != bot.Refused || !strings.Contains(r.Plain(), "unknown command") {
			t.Fatalf("%s in a chat: %+v", line, r)
		}
	}
	if h := f.disp.Command(ctx, slackUser(uRequest), "help"); strings.Contains(h.Plain(), "decide") || !strings.Contains(h.Plain(), "/nocobase history") {
		t.Fatalf("a chat's help:\n%s", h.Plain())
	}
	op := bot.Caller{User: uApprover, Via: bot.ViaTerminal, Prefix: "nocobot", Groups: groups{gApprover: {uApprover}}}
	if h := f.disp.Command(ctx, op, "help"); !strings.Contains(h.Plain(), "nocobot decide <run>") || !strings.Contains(h.Plain(), "nocobot audit") {
		t.Fatalf("a terminal's help:\n%s", h.Plain())
	}
	if r := f.disp.CommandWords(ctx, op, []string{"decide", run.ID, "retry"}, "nocobot decide "+run.ID+" retry"); r.Outcome.Kind != bot.Refused || !strings.Contains(r.Plain(), "Retry is not an option here: choose Continue, Roll back or Abort.") {
		t.Fatalf("retry at a verify checkpoint: %+v", r)
	}
	r := f.disp.CommandWords(ctx, op, []string{"decide", run.ID, "done"}, "nocobot decide "+run.ID+" done")
	if r.Outcome.Kind != bot.OK || r.Decision == nil || r.Decision.Checkpoint != run.Checkpoint.ID || !strings.HasPrefix(r.Plain(), "Recorded: Continue on run "+run.ID) {
		t.Fatalf("decide at a terminal: %+v", r)
	}
	if a := f.lastAudit(); a.Action != "nocobot decide "+run.ID+" done" || a.Outcome != "ok: continue" || a.RunID != run.ID {
		t.Fatalf("audit entry %+v", a)
	}
	au := f.disp.CommandWords(ctx, op, []string{"audit", "--run", run.ID, "-n", "2"}, "nocobot audit --run "+run.ID)
	es, ok := au.Data.([]store.AuditEntry)
	if au.Outcome.Kind != bot.OK || !ok || len(es) != 2 || es[0].Action != "nocobot decide "+run.ID+" done" {
		t.Fatalf("audit at a terminal: %+v", au)
	}
	h := f.disp.Command(ctx, op, "history")
	if runs, ok := h.Data.([]store.Run); h.Outcome.Kind != bot.OK || !ok || len(runs) != 1 || runs[0].ID != run.ID {
		t.Fatalf("history: %+v", h)
	}
}
