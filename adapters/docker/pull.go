package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/nocobot/nocobot/procedures"
)

// Pull makes image present on the engine, reporting layers and bytes
// through progress (at most about once a second, plus the end). A tag
// the registry does not have fails with the registry's message. With
// PullPolicy "missing", or for a digest reference, an image already on the
// engine is used as it is.
func (c *Cluster) Pull(ctx context.Context, image string, progress procedures.Progress) error {
	if progress == nil {
		progress = func(string) {}
	}
	action := "pull " + image
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return &Error{Node: "engine", Action: action, Reason: "not a valid image reference", Err: err}
	}
	_, digested := ref.(reference.Digested)
	if c.opts.PullPolicy == "missing" || digested {
		cctx, cancel := c.call(ctx)
		img, err := c.cli.ImageInspect(cctx, image)
		cancel()
		if err == nil {
			progress(fmt.Sprintf("%s: already on the engine (%s)", image, shortID(img.ID)))
			return nil
		}
	}

	auth, err := c.registryAuth(reference.Domain(ref))
	if err != nil {
		return &Error{Node: "engine", Action: action, Reason: "registry credentials", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.streamTimeout)
	defer cancel()
	start := time.Now()
	resp, err := c.cli.ImagePull(ctx, image, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		if ctx.Err() != nil || client.IsErrConnectionFailed(err) || isDialError(err) && !strings.Contains(err.Error(), "registry") {
			return c.wrap("engine", action, err)
		}
		// The engine relays the registry's answer (unknown tag, denied…).
		return &Error{Node: "engine", Action: action, Reason: "pull failed", Err: err}
	}
	defer resp.Close()
	p := newPullProgress(image)
	last := time.Time{}
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return c.wrap("engine", action, err)
		}
		if msg.Error != nil {
			return &Error{Node: "engine", Action: action, Reason: "registry said", Err: errors.New(msg.Error.Message)}
		}
		p.update(msg.ID, msg.Status, msg.Progress)
		if time.Since(last) >= time.Second {
			last = time.Now()
			progress(p.String())
		}
	}
	p.done = true
	progress(p.String() + fmt.Sprintf(" in %s", time.Since(start).Round(100*time.Millisecond)))
	c.log.Info().Str("image", image).Str("digest", p.digest).Dur("took", time.Since(start)).Msg("image pulled")
	return nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// pullProgress sums the per-layer messages of a pull.
type pullProgress struct {
	image  string
	layers map[string]*layer
	digest string
	done   bool
}

type layer struct {
	current, total int64
	complete       bool
}

func newPullProgress(image string) *pullProgress {
	return &pullProgress{image: image, layers: map[string]*layer{}}
}

func (p *pullProgress) update(id, status string, prog *jsonstream.Progress) {
	if d, ok := strings.CutPrefix(status, "Digest: "); ok {
		p.digest = d
		return
	}
	switch status {
	case "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete",
		"Extracting", "Pull complete", "Already exists":
	default:
		return // whole-image messages ("Pulling from …", "Status: …")
	}
	if id == "" {
		return
	}
	l := p.layers[id]
	if l == nil {
		l = &layer{}
		p.layers[id] = l
	}
	switch status {
	case "Downloading":
		if prog != nil {
			l.current = prog.Current
			if prog.Total > 0 {
				l.total = prog.Total
			}
		}
	case "Download complete", "Extracting", "Verifying Checksum":
		l.current = l.total
	case "Pull complete", "Already exists":
		l.current, l.complete = l.total, true
	}
}

func (p *pullProgress) String() string {
	var cur, total int64
	done := 0
	for _, l := range p.layers {
		if l.complete {
			done++
		}
		cur += l.current
		total += l.total
	}
	s := fmt.Sprintf("%s: %d/%d layers", p.image, done, len(p.layers))
	if total > 0 {
		s += fmt.Sprintf(", %s of %s", bytesHuman(cur), bytesHuman(total))
	}
	if p.done {
		s = fmt.Sprintf("%s: pulled, %d layers", p.image, len(p.layers))
		if total > 0 {
			s += ", " + bytesHuman(total)
		}
		if p.digest != "" {
			s += ", " + p.digest
		}
	}
	return s
}

func bytesHuman(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// registryAuth returns the X-Registry-Auth value for domain: the
// configured user and password, else the Docker config file's entry, else
// nothing (anonymous pull).
func (c *Cluster) registryAuth(domain string) (string, error) {
	r := c.opts.Registry
	if r.Username != "" {
		return authconfig.Encode(registry.AuthConfig{Username: r.Username, Password: r.Password, ServerAddress: domain})
	}
	path := r.ConfigFile
	if path == "" {
		dir := os.Getenv("DOCKER_CONFIG")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", nil
			}
			dir = filepath.Join(home, ".docker")
		}
		path = filepath.Join(dir, "config.json")
	}
	ac, err := authFromConfigFile(path, domain)
	if err != nil || ac == nil {
		return "", err
	}
	return authconfig.Encode(*ac)
}

// authFromConfigFile reads the "auths" entry for domain from a Docker
// config file. Credential helpers (credsStore, credHelpers) are not run:
// give the credentials in nocobot's configuration instead.
func authFromConfigFile(path, domain string) (*registry.AuthConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		// Not the file's content: it holds secrets.
		return nil, fmt.Errorf("%s is not valid JSON", path)
	}
	keys := []string{domain, "https://" + domain, "https://" + domain + "/v1/", "https://" + domain + "/v2/", "http://" + domain}
	if domain == "docker.io" {
		keys = append([]string{"https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"}, keys...)
	}
	for _, k := range keys {
		e, ok := f.Auths[k]
		if !ok {
			continue
		}
		ac := &registry.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, ServerAddress: k}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: auth for %s is not base64", path, k)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("%s: auth for %s is not user:password", path, k)
			}
			ac.Username, ac.Password = user, pass
		}
		return ac, nil
	}
	return nil, nil
}
