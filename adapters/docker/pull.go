package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/nocobot/nocobot/ports"
)

// Pull makes image present on the engine, reporting layers and bytes
// through progress (at most about once a second, plus the end), as the
// pull policy says (see PullPolicyFor): with "missing" an image already
// on the engine is used as it is; with "never" the registry is never
// asked and an absent image is an error that names it. A tag the registry
// does not have fails with the registry's message.
func (c *base) Pull(ctx context.Context, image string, progress ports.Progress) error {
	if progress == nil {
		progress = func(string) {}
	}
	action := "pull " + image
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return &Error{Node: "engine", Action: action, Reason: "not a valid image reference", Err: err}
	}
	policy := pullPolicyFor(c.opts.PullPolicy, ref)
	if policy != PullAlways {
		cctx, cancel := c.call(ctx)
		img, err := c.cli.ImageInspect(cctx, image)
		cancel()
		switch {
		case err == nil:
			progress(fmt.Sprintf("%s: already on the engine (%s)", image, shortID(img.ID)))
			return nil
		case policy == PullNever && cerrdefs.IsNotFound(err):
			return &Error{Node: "engine", Action: action, Err: err,
				Reason: fmt.Sprintf("image %s is not on the engine and the pull policy is never: load it onto the engine (docker load) or change image.pull", image)}
		case policy == PullNever:
			return c.wrap("engine", action, err)
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

// PullPolicyFor returns the policy Pull applies to image: the configured
// one, or by default "missing" for a digest or a tag that names one build
// (it contains a digit) and "always" for a floating tag (latest, beta,
// alpha, latest-full…, or no tag at all).
func (c *base) PullPolicyFor(image string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", &Error{Node: "engine", Action: "pull " + image, Reason: "not a valid image reference", Err: err}
	}
	return pullPolicyFor(c.opts.PullPolicy, ref), nil
}

func pullPolicyFor(configured string, ref reference.Named) string {
	if configured != PullAuto {
		return configured
	}
	if _, ok := ref.(reference.Digested); ok {
		return PullMissing
	}
	if floatingTag(ref) {
		return PullAlways
	}
	return PullMissing
}

// floatingTag reports whether the reference's tag may move to another
// build: one without any digit (latest, beta, alpha, next, latest-full),
// or no tag, which means latest.
func floatingTag(ref reference.Named) bool {
	if _, ok := ref.(reference.Digested); ok {
		return false
	}
	tag := "latest"
	if t, ok := ref.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return !strings.ContainsAny(tag, "0123456789")
}
