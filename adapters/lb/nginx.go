package lb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/rs/zerolog"
)

// DefaultFlagPath is the flag file deploy/nginx/nocobase.conf checks.
const DefaultFlagPath = "/etc/nginx/maintenance/maintenance.on"

// NginxOptions configures the nginx flag-file balancer.
type NginxOptions struct {
	// FlagPath is the flag file: inside Container if that is set,
	// otherwise on this host (a folder nginx sees, e.g. a bind mount).
	// Default DefaultFlagPath.
	FlagPath string
	// Container is the load balancer's container; if set, the flag is
	// created and removed through Docker exec (the image needs sh, mkdir,
	// date and rm, as the official nginx images have).
	Container string
	// ExecTimeout bounds one exec or file operation (default 30s).
	ExecTimeout time.Duration
	// Probe, if its URL is set, confirms each switch.
	Probe ProbeOptions
}

// Nginx switches an nginx that checks a flag file on every request.
type Nginx struct {
	opts       NginxOptions
	containers Containers
	probe      *prober
	log        zerolog.Logger
}

// NewNginx returns the nginx flag-file balancer. containers is needed only
// when opts.Container is set.
func NewNginx(opts NginxOptions, containers Containers, log zerolog.Logger) (*Nginx, error) {
	if opts.FlagPath == "" {
		opts.FlagPath = DefaultFlagPath
	}
	if !filepath.IsAbs(opts.FlagPath) {
		return nil, fmt.Errorf("nginx flag path %q must be absolute", opts.FlagPath)
	}
	if opts.Container != "" && containers == nil {
		return nil, errors.New("nginx balancer in container " + opts.Container + " needs the Docker adapter")
	}
	if opts.ExecTimeout <= 0 {
		opts.ExecTimeout = 30 * time.Second
	}
	log = log.With().Str("adapter", "lb").Str("lb", "nginx").Str("flag", opts.FlagPath).Logger()
	if opts.Container != "" {
		log = log.With().Str("container", opts.Container).Logger()
	}
	p, err := newProber(opts.Probe, log)
	if err != nil {
		return nil, err
	}
	return &Nginx{opts: opts, containers: containers, probe: p, log: log}, nil
}

func (n *Nginx) where() string {
	if n.opts.Container != "" {
		return n.opts.FlagPath + " in container " + n.opts.Container
	}
	return n.opts.FlagPath
}

// The shell scripts take the path as "$1", never spliced into the script.
const (
	scriptOn = `mkdir -p -- "$(dirname -- "$1")" && date -u > "$1.tmp" && mv -f -- "$1.tmp" "$1"`
	// On a read-only folder rm fails even for a file that is not there:
	// only an existing flag is removed, so "already off" stays a success.
	scriptOff  = `if [ -e "$1" ] || [ -L "$1" ]; then rm -f -- "$1"; fi`
	scriptMode = `if [ -e "$1" ]; then echo on; else echo off; fi`
)

func (n *Nginx) exec(ctx context.Context, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.ExecTimeout)
	defer cancel()
	var out bytes.Buffer
	err := n.containers.Exec(ctx, n.opts.Container, []string{"sh", "-c", script, "sh", n.opts.FlagPath}, nil, &out)
	return strings.TrimSpace(out.String()), err
}

// SetMode creates (maintenance) or removes (normal) the flag file, then
// confirms through the probe URL if one is configured. Both are idempotent.
func (n *Nginx) SetMode(ctx context.Context, mode ports.LBMode) error {
	if err := checkMode(mode); err != nil {
		return err
	}
	var err error
	switch {
	case n.opts.Container != "" && mode == ports.LBMaintenance:
		_, err = n.exec(ctx, scriptOn)
	case n.opts.Container != "":
		_, err = n.exec(ctx, scriptOff)
	case mode == ports.LBMaintenance:
		err = writeFlag(n.opts.FlagPath)
	default:
		err = removeFlag(n.opts.FlagPath)
	}
	if err != nil {
		return fmt.Errorf("switch nginx to %s (flag %s): %w", mode, n.where(), err)
	}
	n.log.Info().Str("mode", string(mode)).Msg("load balancer switched")
	return n.probe.confirm(ctx, mode)
}

// writeFlag creates the flag atomically, so nginx never sees half a file
// (it only tests existence, but an editor or a watcher might read it).
func writeFlag(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(time.Now().UTC().Format(time.RFC3339)+" nocobot\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removeFlag removes the flag; a flag that is not there is already off.
// Linux refuses an unlink on a read-only file system (EROFS) before it
// looks the name up, so the error alone does not say whether the flag
// exists: ask.
func removeFlag(path string) error {
	err := os.Remove(path)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, serr := os.Lstat(path); errors.Is(serr, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Mode reports the flag file's state: it is what nginx acts on.
func (n *Nginx) Mode(ctx context.Context) (ports.LBMode, error) {
	if n.opts.Container != "" {
		out, err := n.exec(ctx, scriptMode)
		if err != nil {
			return ports.LBUnknown, fmt.Errorf("read nginx flag %s: %w", n.where(), err)
		}
		switch out {
		case "on":
			return ports.LBMaintenance, nil
		case "off":
			return ports.LBNormal, nil
		}
		return ports.LBUnknown, fmt.Errorf("read nginx flag %s: unexpected output %q", n.where(), out)
	}
	_, err := os.Stat(n.opts.FlagPath)
	switch {
	case err == nil:
		return ports.LBMaintenance, nil
	case errors.Is(err, fs.ErrNotExist):
		return ports.LBNormal, nil
	}
	return ports.LBUnknown, fmt.Errorf("read nginx flag: %w", err)
}
