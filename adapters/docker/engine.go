// Package docker drives NocoBase app nodes that run as Docker containers
// (or as the tasks of one Swarm service) through the Docker Engine API,
// with github.com/moby/moby/client. The client negotiates the API version
// with the engine on its first call, so engines from API 1.41 (Docker
// 20.10) up work.
//
// The types:
//   - Engine: a connection to one engine, with Exec, CopyFrom and CopyTo
//     for containers that are not app nodes (the database, the load
//     balancer). Build it with NewEngine.
//   - Containers and Swarm: the app nodes of one cluster, selected by
//     labels or by a Swarm service name; each implements ports.Nodes
//     on an Engine (NewContainers, NewSwarm).
//   - Cluster: the one of the two that the options ask for, with the
//     Engine's Exec and copies (New).
package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/rs/zerolog"
)

// EngineOptions says how to reach a Docker engine.
type EngineOptions struct {
	// Host is the engine's address: "unix:///var/run/docker.sock" or
	// "tcp://host:2376". Empty means $DOCKER_HOST, then the default socket.
	Host string
	// TLSCertPath is a folder with ca.pem, cert.pem and key.pem for a TCP
	// engine with TLS. Empty means $DOCKER_CERT_PATH (if set).
	TLSCertPath string
	// TLSVerify checks the engine's certificate against ca.pem. It is also
	// on when $DOCKER_TLS_VERIFY is set and TLSCertPath came from the
	// environment.
	TLSVerify bool
	// CallTimeout bounds each short engine call (inspect, start, create…);
	// default 30s. Waits (stop, start, convergence) have their own limits.
	CallTimeout time.Duration
	// StreamTimeout bounds a whole streaming call (exec, copy, pull);
	// default 6h. The caller's context can end it sooner.
	StreamTimeout time.Duration
}

// Engine is a connection to one Docker engine.
type Engine struct {
	cli           *client.Client
	host          string
	log           zerolog.Logger
	callTimeout   time.Duration
	streamTimeout time.Duration
}

// NewEngine builds a client for the engine; it does not contact the engine
// (the first call negotiates the API version). Use Ping to check it.
func NewEngine(opts EngineOptions, log zerolog.Logger) (*Engine, error) {
	host := opts.Host
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	certPath, verify := opts.TLSCertPath, opts.TLSVerify
	if certPath == "" {
		certPath = os.Getenv(client.EnvOverrideCertPath)
		verify = verify || os.Getenv(client.EnvTLSVerify) != ""
	}
	ops := []client.Opt{client.WithAPIVersionFromEnv()}
	if certPath != "" {
		tlsCfg, err := loadTLS(certPath, verify)
		if err != nil {
			return nil, err
		}
		// No http.Client timeout: it would cut long exec and copy streams;
		// every call gets a context deadline instead.
		ops = append(ops, client.WithHTTPClient(&http.Client{
			Transport:     &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConns: 6, IdleConnTimeout: 30 * time.Second},
			CheckRedirect: client.CheckRedirect,
		}))
	}
	if host != "" {
		ops = append(ops, client.WithHost(host))
	}
	cli, err := client.New(ops...)
	if err != nil {
		return nil, fmt.Errorf("docker engine %s: %w", displayHost(host), err)
	}
	e := &Engine{
		cli:           cli,
		host:          cli.DaemonHost(),
		log:           log.With().Str("engine", cli.DaemonHost()).Logger(),
		callTimeout:   opts.CallTimeout,
		streamTimeout: opts.StreamTimeout,
	}
	if e.callTimeout <= 0 {
		e.callTimeout = 30 * time.Second
	}
	if e.streamTimeout <= 0 {
		e.streamTimeout = 6 * time.Hour
	}
	return e, nil
}

func displayHost(h string) string {
	if h == "" {
		return client.DefaultDockerHost
	}
	return h
}

// loadTLS reads the usual DOCKER_CERT_PATH files. ca.pem is optional when
// verification is off; cert.pem and key.pem are optional together (TLS
// without a client certificate).
func loadTLS(dir string, verify bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !verify} //nolint:gosec // the user turned verification off, as DOCKER_TLS_VERIFY does
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	switch {
	case err == nil:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("docker TLS: %s holds no certificate", filepath.Join(dir, "ca.pem"))
		}
		cfg.RootCAs = pool
	case verify:
		return nil, fmt.Errorf("docker TLS: verification is on but ca.pem cannot be read: %w", err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := os.Stat(certFile); err == nil {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("docker TLS: client certificate in %s: %w", dir, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Close releases the client's idle connections.
func (e *Engine) Close() error { return e.cli.Close() }

// Client returns the underlying moby client, for what this package does
// not wrap.
func (e *Engine) Client() *client.Client { return e.cli }

// Host returns the engine's address.
func (e *Engine) Host() string { return e.host }

// Ping checks that the engine answers and returns the negotiated API
// version.
func (e *Engine) Ping(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.callTimeout)
	defer cancel()
	if _, err := e.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", e.wrap("engine", "ping", err)
	}
	return e.cli.ClientVersion(), nil
}

// Env returns a container's configured environment ("KEY=value" pairs),
// e.g. for a node's DB_DIALECT.
func (e *Engine) Env(ctx context.Context, container string) ([]string, error) {
	cctx, cancel := e.call(ctx)
	defer cancel()
	res, err := e.cli.ContainerInspect(cctx, container, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", container, err)
	}
	if res.Container.Config == nil {
		return nil, nil
	}
	return res.Container.Config.Env, nil
}

// call returns a context bounded by the per-call timeout.
func (e *Engine) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.callTimeout)
}

// Exec runs cmd in a running container (by name or id) and streams its
// stdout to stdout as it comes (never buffered whole). stdin, if not nil,
// is copied to the command's standard input and then closed. A non-zero
// exit code is an error that names the container and command and carries
// the tail of stderr.
func (e *Engine) Exec(ctx context.Context, container string, cmd []string, stdin io.Reader, stdout io.Writer) error {
	action := execAction(cmd)
	if len(cmd) == 0 {
		return fmt.Errorf("%s: exec: no command given", container)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, e.streamTimeout)
	defer cancel()

	cctx, ccancel := e.call(ctx)
	created, err := e.cli.ExecCreate(cctx, container, client.ExecCreateOptions{
		Cmd:          cmd,
		AttachStdin:  stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	ccancel()
	if err != nil {
		return e.wrap(container, action, err)
	}
	att, err := e.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return e.wrap(container, action, err)
	}
	defer att.Close()
	// The hijacked connection outlives the request's context: close it
	// ourselves when ctx ends so a stuck command cannot hang us.
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()

	var stdinErr chan error
	if stdin != nil {
		stdinErr = make(chan error, 1)
		go func() {
			_, err := io.Copy(att.Conn, stdin)
			stdinErr <- errors.Join(err, att.CloseWrite())
		}()
	}
	stderr := &tailBuffer{max: 4 << 10}
	_, copyErr := stdcopy.StdCopy(stdout, stderr, att.Reader)
	if ctx.Err() != nil {
		return e.wrap(container, action, ctx.Err())
	}
	if copyErr != nil {
		return fmt.Errorf("%s: %s: reading output: %w", container, action, copyErr)
	}
	if stdinErr != nil {
		select {
		case err := <-stdinErr:
			if err != nil && !errors.Is(err, io.ErrClosedPipe) {
				e.log.Debug().Err(err).Str("container", container).Msg("exec: writing stdin")
			}
		default: // the command did not read all of its input; its exit code says whether that mattered
		}
	}

	code, err := e.execExitCode(ctx, created.ID)
	if err != nil {
		return e.wrap(container, action, err)
	}
	if code != 0 {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return fmt.Errorf("%s: %s: exit code %d", container, action, code)
		}
		return fmt.Errorf("%s: %s: exit code %d: %s", container, action, code, msg)
	}
	return nil
}

// execExitCode waits for the engine to record the end of the exec (its
// output can end a moment before) and returns the exit code.
func (e *Engine) execExitCode(ctx context.Context, id string) (int, error) {
	ctx, cancel := e.call(ctx)
	defer cancel()
	for {
		res, err := e.cli.ExecInspect(ctx, id, client.ExecInspectOptions{})
		if err != nil {
			return 0, err
		}
		if !res.Running {
			return res.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("command still running after its output ended: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CopyFrom returns a tar stream of path in the container (docker cp
// semantics: a folder comes as one entry named after it, with its
// contents below). It works on stopped containers too. The caller must
// close the stream.
func (e *Engine) CopyFrom(ctx context.Context, container, path string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, e.streamTimeout)
	res, err := e.cli.CopyFromContainer(ctx, container, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		cancel()
		return nil, e.wrap(container, "copy from "+path, err)
	}
	return &cancelCloser{ReadCloser: res.Content, cancel: cancel}, nil
}

// CopyTo extracts a tar stream into dir, an existing folder in the
// container (running or stopped), like docker cp.
func (e *Engine) CopyTo(ctx context.Context, container, dir string, tarStream io.Reader) error {
	ctx, cancel := context.WithTimeout(ctx, e.streamTimeout)
	defer cancel()
	_, err := e.cli.CopyToContainer(ctx, container, client.CopyToContainerOptions{
		DestinationPath: dir,
		Content:         tarStream,
	})
	if err != nil {
		return e.wrap(container, "copy to "+dir, err)
	}
	return nil
}

type cancelCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelCloser) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// tailBuffer keeps the last max bytes written to it: enough stderr for an
// error message without holding a chatty command's whole output.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// quoteCmd renders a command for messages: the program and its first few
// arguments, shortened, with anything that looks like a credential
// (KEY=value, or a word such as password/token/secret) replaced, because
// callers sometimes pass secrets on a command line and errors end up in
// Slack.
func quoteCmd(cmd []string) string {
	if len(cmd) == 0 {
		return "[]"
	}
	parts := make([]string, 0, 5)
	for i, a := range cmd {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("…(+%d)", len(cmd)-i))
			break
		}
		l := strings.ToLower(a)
		if i > 0 && (strings.Contains(a, "=") || strings.Contains(l, "pass") || strings.Contains(l, "secret") ||
			strings.Contains(l, "token") || strings.Contains(l, "key")) {
			a = "[redacted]"
		}
		if len(a) > 40 {
			a = a[:37] + "..."
		}
		parts = append(parts, a)
	}
	return fmt.Sprintf("%q", strings.Join(parts, " "))
}
