// Package slack is nocobot's Slack front: the /nocobase slash command
// (Socket Mode or signed HTTP), one thread per run kept current, the
// checkpoint buttons, and who may do what.
//
// Every command and click is acknowledged at once and handled in a
// goroutine afterwards; the thread renderer reads the engine's events
// and never blocks the engine; Slack being slow or unreachable delays
// the thread, never the run.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// Engine is what the Slack front reads of *procedures.Engine besides
// the dispatcher: the events it renders, the runs it catches up with,
// and the notes that name each run's thread.
type Engine interface {
	Subscribe() *events.Subscription
	UnfinishedRuns(ctx context.Context) ([]store.Run, error)
	Decisions(ctx context.Context, runID string) ([]store.Decision, error)
	PutNote(ctx context.Context, scope, key, value string) error
	GetNote(ctx context.Context, scope, key string) (string, error)
	Window(ctx context.Context, id string) (store.Window, error)
}

// Options configure the front. Tokens are values (main reads them from
// the environment variables the config names); they are never logged.
type Options struct {
	Config        *config.Config
	BotToken      string // xoxb-…
	AppToken      string // xapp-…, Socket Mode
	SigningSecret string // HTTP mode
	// APIURL overrides Slack's Web API URL (tests: slacktest).
	APIURL string
	// HTTPClient overrides the client used for Web API calls.
	HTTPClient *http.Client

	// EditEvery is the least time between two edits of one message;
	// default 1 s (Slack allows about one chat.update per second).
	EditEvery time.Duration
	// FlushDelay gathers the changes of a short burst of events into one
	// call; default 250 ms.
	FlushDelay time.Duration
	// CallTimeout bounds every Slack API call; default 10 s.
	CallTimeout time.Duration
	// GroupTTL is how long user group members are cached; default 5 min.
	GroupTTL time.Duration
	// MaxBackoff caps the wait between retries of a failed call; default 30 s.
	MaxBackoff time.Duration
	// ParkRetry is the first wait before a thread whose channel refuses
	// the bot (not_in_channel) is tried again; each further wait doubles,
	// up to ParkMaxRetry (default 1 h). After ParkGiveUp (default 24 h)
	// it is no longer tried, and says so in access.slack.channels. An
	// invitation of the bot posts it at once whatever the wait; default
	// 1 min.
	ParkRetry    time.Duration
	ParkMaxRetry time.Duration
	ParkGiveUp   time.Duration
	// Clock times the retries of parked threads (tests: a fake clock);
	// default the wall clock.
	Clock ports.Clock
	// SocketGrace is how long Socket Mode may be down before Ready
	// fails; default 30 s.
	SocketGrace time.Duration
	// Replay remembers the requests already served, for every process
	// on the store (the store does): a replay is refused even by another
	// replica or after a restart. Required.
	Replay SeenOnce
}

// SeenOnce is the replay guard of *store.Store.
type SeenOnce interface {
	SeenOnce(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
}

// Front is the Slack front.
type Front struct {
	cfg    *config.Config
	opts   Options
	disp   *bot.Dispatcher
	eng    Engine
	log    zerolog.Logger
	api    *slack.Client
	calls  *apiCalls
	groups *groups

	command string // "/nocobase"

	// base lives as long as the front: work after an ack runs under it,
	// not under the request that brought it.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	replay SeenOnce
	// botUser is the bot's user id, known after CheckTokens.
	botUser atomicString
	// botNameV is the bot's name, for "/invite @name".
	botNameV atomicString
	// subscribed is closed once Run listens to the engine (tests wait on it).
	subscribed chan struct{}
	// socket is the Socket Mode connection's state; nil in HTTP mode.
	socket *socketState
	// auth is readiness's auth.test, asked at most every 30 s.
	auth func(context.Context) error

	mu      sync.Mutex
	threads map[string]*thread // run id → thread being rendered
	bound   map[string]string  // run id → channel of the command that started it
}

// New makes the front: commands and clicks go to disp, runs are
// rendered from eng's events. Call Run to serve Slack and render runs.
func New(opts Options, disp *bot.Dispatcher, eng Engine, log zerolog.Logger) (*Front, error) {
	if opts.Config == nil {
		return nil, errors.New("slack: no configuration")
	}
	if disp == nil || eng == nil {
		return nil, errors.New("slack: no dispatcher or engine")
	}
	if opts.BotToken == "" {
		return nil, errors.New("slack: no bot token")
	}
	mode := opts.Config.Slack.Mode
	switch mode {
	case "", "socket":
		if opts.AppToken == "" {
			return nil, errors.New("slack: socket mode needs an app-level token (xapp-…)")
		}
	case "http":
		if opts.SigningSecret == "" {
			return nil, errors.New("slack: http mode needs the signing secret")
		}
	default:
		return nil, fmt.Errorf("slack: mode %q: expected socket or http", mode)
	}
	if opts.EditEvery <= 0 {
		opts.EditEvery = time.Second
	}
	if opts.FlushDelay <= 0 {
		opts.FlushDelay = 250 * time.Millisecond
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.GroupTTL <= 0 {
		opts.GroupTTL = 5 * time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.ParkRetry <= 0 {
		opts.ParkRetry = time.Minute
	}
	if opts.ParkMaxRetry <= 0 {
		opts.ParkMaxRetry = time.Hour
	}
	if opts.ParkGiveUp <= 0 {
		opts.ParkGiveUp = 24 * time.Hour
	}
	if opts.SocketGrace <= 0 {
		opts.SocketGrace = socketGrace
	}
	if opts.Clock == nil {
		opts.Clock = ports.SystemClock()
	}
	if opts.Replay == nil {
		return nil, errors.New("slack: no replay guard (the store)")
	}
	if opts.APIURL == "" {
		opts.APIURL = opts.Config.Slack.APIURL
	}
	slackOpts := []slack.Option{}
	if opts.APIURL != "" {
		slackOpts = append(slackOpts, slack.OptionAPIURL(opts.APIURL))
	}
	if opts.HTTPClient != nil {
		slackOpts = append(slackOpts, slack.OptionHTTPClient(opts.HTTPClient))
	}
	if opts.AppToken != "" {
		slackOpts = append(slackOpts, slack.OptionAppLevelToken(opts.AppToken))
	}
	api := slack.New(opts.BotToken, slackOpts...)
	base, cancel := context.WithCancel(context.Background())
	f := &Front{
		cfg: opts.Config, opts: opts, disp: disp, eng: eng, log: log, api: api,
		command: opts.Config.Slack.Command,
		base:    base, cancel: cancel,
		replay: opts.Replay, subscribed: make(chan struct{}),
		threads: map[string]*thread{}, bound: map[string]string{},
	}
	if f.command == "" {
		f.command = "/nocobase"
	}
	if mode != "http" {
		f.socket = &socketState{}
		f.socket.set(false, "not connected yet", time.Now())
	}
	f.auth = authCheck(api)
	f.calls = &apiCalls{log: log, timeout: opts.CallTimeout, maxBackoff: opts.MaxBackoff}
	f.groups = newGroups(f.calls, api, opts.GroupTTL, log)
	return f, nil
}

// Run renders the engine's runs into Slack threads and serves Slack
// (Socket Mode, or the HTTP endpoints when config.Slack.Mode is "http"
// and Listen is set; with an empty Listen, mount Handler yourself) until
// ctx ends. Slack being away is logged and retried: the bot's runs must
// not stop for it. A token Slack refuses, a certificate that cannot be
// trusted or an address that cannot be listened on is returned.
func (f *Front) Run(ctx context.Context) error {
	defer f.shutdown()
	sub := f.eng.Subscribe()
	defer sub.Close()
	close(f.subscribed)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.render(ctx, sub)
	}()
	var err error
	switch f.cfg.Slack.Mode {
	case "http":
		err = f.serveHTTP(ctx)
	default:
		err = f.runSocket(ctx)
	}
	if err != nil {
		return err // serve stops: retrying cannot mend it
	}
	<-ctx.Done()
	return nil
}

func (f *Front) shutdown() {
	f.cancel()
	f.wg.Wait()
}

// goWork runs fn after an ack, under the front's lifetime.
func (f *Front) goWork(fn func(ctx context.Context)) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer func() {
			if p := recover(); p != nil {
				f.log.Error().Interface("panic", p).Msg("slack: handler panicked")
			}
		}()
		fn(f.base)
	}()
}

// atomicString is a string read and written from several goroutines.
type atomicString struct{ v atomic.Value }

func (a *atomicString) Load() string {
	s, _ := a.v.Load().(string)
	return s
}

func (a *atomicString) Store(s string) { a.v.Store(s) }
