// Package nocobase talks to the NocoBase application on one node: the
// health check, the version, and plugin management through the API.
//
// Response shapes are those described in docs/nocobase.md
// (gateway/index.ts and plugin-manager/options/resource.ts).
package nocobase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

var _ ports.App = (*Client)(nil)

// Options configures a Client. The zero value is usable for the health
// check and the version; plugin actions need APIKey.
type Options struct {
	// APIKey is the API key value (plugin @nocobase/plugin-api-keys), sent
	// as a bearer token on plugin actions only. main reads it from the
	// environment variable the configuration names; it never appears in
	// logs or errors.
	APIKey string
	// APIKeyEnv names the environment variable APIKey came from, for
	// errors that must say which key was refused.
	APIKeyEnv string
	// Role, if set, is sent as X-Role with plugin actions.
	Role string
	// PollInterval is the time between two health probes while waiting
	// (default 200ms: a node that turns healthy is noticed within 250 ms,
	// each probe bounded by RequestTimeout).
	PollInterval time.Duration
	// RequestTimeout bounds one probe or one quick request (default 5s,
	// like NocoBase's own CLI).
	RequestTimeout time.Duration
	// ActionTimeout bounds one plugin action request; with
	// awaitResponse=true NocoBase answers only after the plugin has been
	// loaded, which can take a while (default 5m).
	ActionTimeout time.Duration
	// AliveEvery is how often a long wait reports the elapsed time even
	// when nothing changed (default 10s).
	AliveEvery time.Duration
	// ErrorGrace is how long a node may stay in a failed state (APP_ERROR,
	// COMMAND_ERROR) before WaitHealthy gives up instead of waiting for the
	// deadline: such a node does not recover without a restart (default 15s).
	ErrorGrace time.Duration
	// Settle is how long after a plugin action an "ok" is not trusted
	// unless a non-ok status was seen first: older NocoBase versions answer
	// the action before the reload begins (default 3s).
	Settle time.Duration
	// HTTPClient, if set, replaces the default client (tests, proxies).
	HTTPClient *http.Client
}

// DefaultPollInterval is the time between two health probes unless
// configured otherwise.
const DefaultPollInterval = 200 * time.Millisecond

// Client implements ports.App over NocoBase's HTTP API.
type Client struct {
	opts Options
	http *http.Client
	log  zerolog.Logger
	now  func() time.Time
}

// New returns a Client.
func New(opts Options, log zerolog.Logger) *Client {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	if opts.ActionTimeout <= 0 {
		opts.ActionTimeout = 5 * time.Minute
	}
	if opts.AliveEvery <= 0 {
		opts.AliveEvery = 10 * time.Second
	}
	if opts.ErrorGrace <= 0 {
		opts.ErrorGrace = 15 * time.Second
	}
	if opts.Settle <= 0 {
		opts.Settle = 3 * time.Second
	}
	hc := opts.HTTPClient
	if hc == nil {
		// No client-wide timeout: each request gets its own context
		// deadline, and plugin actions need a longer one than probes.
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return &Client{opts: opts, http: hc, log: log.With().Str("adapter", "nocobase").Logger(), now: time.Now}
}

// Plugin is one entry of pm:list.
type Plugin struct {
	Name        string `json:"name"`
	PackageName string `json:"packageName"`
	Version     string `json:"version"`
	Enabled     bool   `json:"enabled"`
	Installed   bool   `json:"installed"`
	BuiltIn     bool   `json:"builtIn"`
}

// apiError is the error part of NocoBase's answers: the gateway's
// {"error":{…}} while the app is not running, and the API's
// {"errors":[{…}]} for rejected requests.
type apiError struct {
	Error *struct {
		Status      int    `json:"status"`
		Code        string `json:"code"`
		Message     string `json:"message"`
		Maintaining bool   `json:"maintaining"`
		Command     *struct {
			Name string `json:"name"`
		} `json:"command"`
	} `json:"error"`
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func parseAPIError(body []byte) (code, message, command string) {
	var e apiError
	if json.Unmarshal(body, &e) != nil {
		return "", "", ""
	}
	if e.Error != nil {
		if e.Error.Command != nil {
			command = e.Error.Command.Name
		}
		return e.Error.Code, e.Error.Message, command
	}
	if len(e.Errors) > 0 {
		msgs := make([]string, 0, len(e.Errors))
		for _, x := range e.Errors {
			if x.Message != "" {
				msgs = append(msgs, x.Message)
			}
		}
		return e.Errors[0].Code, strings.Join(msgs, "; "), ""
	}
	return "", "", ""
}

// maxBody bounds what is read of any answer: the bot only needs small
// JSON documents, and a misconfigured URL could point at anything.
const maxBody = 4 << 20

func endpoint(base, path string) (string, error) {
	if base == "" {
		return "", errors.New("node has no URL")
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + path)
	if err != nil {
		return "", fmt.Errorf("node URL %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("node URL %q: scheme must be http or https", base)
	}
	return u.String(), nil
}

// do sends one request and returns the status and (bounded) body.
func (c *Client) do(ctx context.Context, method, u string, auth bool, body io.Reader, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		if c.opts.APIKey != "" {
			req.Header.Set("Authorization", "Bearer "+c.opts.APIKey)
		}
		if c.opts.Role != "" {
			req.Header.Set("X-Role", c.opts.Role)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, b, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// refused reports a connection that nothing accepts yet: the Node.js
// server has not started listening, which is normal during a start.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// transportError strips the URL from net/http errors (it is known to the
// caller) and keeps the cause short.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Probe asks the health check of the app at baseURL once. Connection
// refused is not an error: it is reported as Listening=false. Other
// transport failures (timeouts, resets, DNS) return an error along with
// what is known.
func (c *Client) Probe(ctx context.Context, baseURL string) (ports.AppStatus, error) {
	u, err := endpoint(baseURL, "/api/__health_check")
	if err != nil {
		return ports.AppStatus{}, err
	}
	status, body, err := c.do(ctx, http.MethodGet, u, false, nil, c.opts.RequestTimeout)
	if err != nil {
		if refused(err) {
			return ports.AppStatus{Listening: false, Message: "connection refused"}, nil
		}
		if ctx.Err() != nil {
			return ports.AppStatus{}, ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ports.AppStatus{Listening: status != 0, HTTPStatus: status},
				fmt.Errorf("health check timed out after %s", c.opts.RequestTimeout)
		}
		return ports.AppStatus{Listening: status != 0, HTTPStatus: status},
			fmt.Errorf("health check: %w", transportError(err))
	}
	st := ports.AppStatus{Listening: true, HTTPStatus: status}
	if status >= 200 && status < 300 && strings.TrimSpace(string(body)) == "ok" {
		st.Healthy = true
		return st, nil
	}
	st.Code, st.Message, st.Command = parseAPIError(body)
	if st.Code == "" && st.Message == "" {
		// Not NocoBase's gateway: an nginx 502 while the server starts, or
		// something else answering at this URL.
		st.Message = shortBody(status, body)
	}
	return st, nil
}

func shortBody(status int, body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	if s == "" || strings.HasPrefix(s, "<") {
		// An HTML error page says nothing the status does not.
		return http.StatusText(status)
	}
	return s
}

// Describe renders a status as progress text, without the node name:
// "APP_COMMANDING start — load plugin [ai], 50/77".
func Describe(st ports.AppStatus) string {
	switch {
	case st.Healthy:
		return "healthy"
	case !st.Listening:
		return "not listening yet (" + nonEmpty(st.Message, "connection refused") + ")"
	}
	head := st.Code
	if head == "" {
		head = fmt.Sprintf("HTTP %d", st.HTTPStatus)
	} else if st.Command != "" {
		head += " " + st.Command
	}
	if st.Message != "" {
		return head + " — " + st.Message
	}
	return head
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// failed reports states a node does not leave by itself.
func failed(st ports.AppStatus) bool {
	return st.Code == "APP_ERROR" || st.Code == "COMMAND_ERROR" || strings.HasSuffix(st.Code, "_ERROR") && st.Code != "UNKNOWN_ERROR"
}

// WaitHealthy polls the node's health check until it answers 200 "ok", until
// ctx's deadline. Each change of status is reported through progress as
// "<node>: <status>", and while nothing changes a line with the elapsed
// time is sent at most every AliveEvery.
func (c *Client) WaitHealthy(ctx context.Context, node ports.Node, progress ports.Progress) error {
	return c.waitHealthy(ctx, node, progress, 0)
}

func (c *Client) waitHealthy(ctx context.Context, node ports.Node, progress ports.Progress, settle time.Duration) error {
	if progress == nil {
		progress = func(string) {}
	}
	name := nodeName(node)
	if _, err := endpoint(node.URL, ""); err != nil {
		// Polling will not fix a bad URL.
		return fmt.Errorf("%s: %w", name, err)
	}
	start := c.now()
	lastLine, lastReport := "", start
	var failedSince time.Time
	sawUnhealthy := false
	var last ports.AppStatus
	var lastErr error
	report := func(line string) {
		progress(name + ": " + line)
		lastLine, lastReport = line, c.now()
	}
	tick := time.NewTicker(c.opts.PollInterval)
	defer tick.Stop()
	for {
		st, err := c.Probe(ctx, node.URL)
		now := c.now()
		line := Describe(st)
		if err != nil {
			if ctx.Err() != nil {
				return c.waitError(ctx, name, start, last, lastErr)
			}
			line = err.Error()
		}
		last, lastErr = st, err
		switch {
		case err == nil && st.Healthy && (sawUnhealthy || now.Sub(start) >= settle):
			took := now.Sub(start).Round(100 * time.Millisecond)
			progress(fmt.Sprintf("%s: healthy after %s", name, took))
			c.log.Info().Str("node", name).Dur("took", took).Msg("node healthy")
			return nil
		case err == nil && st.Healthy:
			// An "ok" right after a plugin action may predate the reload.
		default:
			sawUnhealthy = true
			if line != lastLine {
				report(line)
			} else if now.Sub(lastReport) >= c.opts.AliveEvery {
				progress(fmt.Sprintf("%s: still waiting (%s) — %s", name, now.Sub(start).Round(time.Second), line))
				lastReport = now
			}
		}
		if err == nil && failed(st) {
			if failedSince.IsZero() {
				failedSince = now
			}
			if now.Sub(failedSince) >= c.opts.ErrorGrace {
				return fmt.Errorf("%s: node failed: %s (still so after %s; a restart of the node is the usual cure)",
					name, Describe(st), c.opts.ErrorGrace)
			}
		} else {
			failedSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return c.waitError(ctx, name, start, last, lastErr)
		case <-tick.C:
		}
	}
}

func (c *Client) waitError(ctx context.Context, name string, start time.Time, last ports.AppStatus, lastErr error) error {
	what := Describe(last)
	if lastErr != nil {
		what = lastErr.Error()
	}
	if last == (ports.AppStatus{}) && lastErr == nil {
		what = "no answer yet"
	}
	return fmt.Errorf("%s: not healthy after %s (last: %s): %w",
		name, c.now().Sub(start).Round(time.Second), what, ctx.Err())
}

func nodeName(n ports.Node) string {
	if n.Name != "" {
		return n.Name
	}
	return n.URL
}

// Version returns data.version from /api/app:getInfo.
func (c *Client) Version(ctx context.Context, node ports.Node) (string, error) {
	name := nodeName(node)
	u, err := endpoint(node.URL, "/api/app:getInfo")
	if err != nil {
		return "", fmt.Errorf("%s: version: %w", name, err)
	}
	status, body, err := c.do(ctx, http.MethodGet, u, false, nil, c.opts.RequestTimeout)
	if err != nil {
		return "", fmt.Errorf("%s: version: %w", name, transportError(err))
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("%s: version: %w", name, c.httpError(status, body))
	}
	var info struct {
		Data struct {
			Version string `json:"version"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.Data.Version == "" {
		return "", fmt.Errorf("%s: version: app:getInfo answered without data.version: %s", name, shortBody(status, body))
	}
	return info.Data.Version, nil
}

// Plugins returns pm:list (needs the API key).
func (c *Client) Plugins(ctx context.Context, node ports.Node) ([]Plugin, error) {
	name := nodeName(node)
	u, err := endpoint(node.URL, "/api/pm:list")
	if err != nil {
		return nil, fmt.Errorf("%s: pm:list: %w", name, err)
	}
	status, body, err := c.do(ctx, http.MethodGet, u, true, nil, c.opts.RequestTimeout)
	if err != nil {
		return nil, fmt.Errorf("%s: pm:list: %w", name, transportError(err))
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s: pm:list: %w", name, c.httpError(status, body))
	}
	var list struct {
		Data []Plugin `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("%s: pm:list: unexpected answer: %w", name, err)
	}
	return list.Data, nil
}

// Plugin runs a plugin action (enable, disable, add) and waits until the
// node is healthy again. pkg is a plugin name or package name; for add it
// may end in "@version".
func (c *Client) Plugin(ctx context.Context, node ports.Node, action, pkg string, progress ports.Progress) error {
	name := nodeName(node)
	if progress == nil {
		progress = func(string) {}
	}
	pkg = strings.TrimSpace(pkg)
	if pkg == "" {
		return fmt.Errorf("%s: pm:%s: no plugin name given", name, action)
	}
	var (
		path string
		body io.Reader
	)
	switch action {
	case "enable", "disable":
		// awaitResponse (v2.1+; ignored by older versions) makes NocoBase
		// answer after the reload, so a failure comes back with its
		// message instead of only as an APP_ERROR on the health check.
		path = "/api/pm:" + action + "?" + url.Values{"filterByTk": {pkg}, "awaitResponse": {"true"}}.Encode()
	case "add":
		values := map[string]string{"packageName": pkg}
		if i := strings.LastIndex(pkg, "@"); i > 0 {
			values["packageName"], values["version"] = pkg[:i], pkg[i+1:]
		}
		b, err := json.Marshal(values)
		if err != nil {
			return err
		}
		path, body = "/api/pm:add", strings.NewReader(string(b))
	default:
		return fmt.Errorf("%s: unknown plugin action %q (want enable, disable or add)", name, action)
	}
	u, err := endpoint(node.URL, path)
	if err != nil {
		return fmt.Errorf("%s: pm:%s: %w", name, action, err)
	}
	progress(fmt.Sprintf("%s: pm:%s %s", name, action, pkg))
	c.log.Info().Str("node", name).Str("action", action).Str("plugin", pkg).Msg("plugin action")
	status, respBody, err := c.do(ctx, http.MethodPost, u, true, body, c.opts.ActionTimeout)
	if err != nil {
		return fmt.Errorf("%s: pm:%s %s: %w", name, action, pkg, transportError(err))
	}
	if status < 200 || status >= 300 {
		return fmt.Errorf("%s: pm:%s %s: %w", name, action, pkg, c.httpError(status, respBody))
	}
	if err := c.waitHealthy(ctx, node, progress, c.opts.Settle); err != nil {
		return fmt.Errorf("pm:%s %s: %w", action, pkg, err)
	}
	return nil
}

// HTTPError is a non-success answer of the NocoBase API, with a message
// meant for the people reading the run's thread.
type HTTPError struct {
	Status  int
	Code    string // NocoBase's code, e.g. INVALID_TOKEN
	Message string // NocoBase's message, if any
	Hint    string // what the status means for the bot
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.Status)
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	if e.Code != "" {
		s += " [" + e.Code + "]"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (c *Client) httpError(status int, body []byte) error {
	code, msg, command := parseAPIError(body)
	if code == "" && msg == "" {
		msg = shortBody(status, body)
	}
	e := &HTTPError{Status: status, Code: code, Message: msg}
	switch {
	case status == http.StatusUnauthorized && (code == "EMPTY_TOKEN" || c.opts.APIKey == ""):
		e.Hint = "no API key was sent; configure one (plugin API keys)"
	case status == http.StatusUnauthorized:
		e.Hint = "the API key was rejected (wrong, expired or revoked)"
	case status == http.StatusForbidden:
		e.Hint = "the API key's role may not do this"
	case status == http.StatusBadRequest:
		e.Hint = "invalid request (plugin name?)"
	case status == http.StatusNotFound:
		e.Hint = "not found (wrong URL, or the plugin does not exist)"
	case status == http.StatusServiceUnavailable && code != "":
		e.Hint = "the app is not running"
		if command != "" {
			e.Hint += " (" + code + " " + command + ")"
			e.Code = ""
		}
	case status >= 500:
		e.Hint = "NocoBase failed"
	}
	return e
}
