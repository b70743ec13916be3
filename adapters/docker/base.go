package docker

import (
	"context"
	"errors"
	"sync"

	"github.com/distribution/reference"
	"github.com/rs/zerolog"
)

// base is the engine plumbing both kinds of node set share: the
// connection, the options, the logger, image look-ups and pulls
// (pull.go, images.go) and running an action on several nodes.
type base struct {
	*Engine
	opts Options
	log  zerolog.Logger
}

func newBase(opts Options, log zerolog.Logger) (base, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return base{}, err
	}
	e, err := NewEngine(opts.EngineOptions, log)
	if err != nil {
		return base{}, err
	}
	l := log.With().Str("component", "docker").Logger()
	if opts.SwarmService != "" {
		l = l.With().Str("service", opts.SwarmService).Logger()
	}
	return base{Engine: e, opts: opts, log: l}, nil
}

// digest returns the registry digest of the image a container runs in
// the repository of ref, the reference the container was made from
// ("sha256:…" from RepoDigests), or, for an image that never came from
// that repository's registry, its local id (also "sha256:…", good for
// going back on this engine). A digest of another repository would not
// name the image together with ref's repository, so it is never used.
func (c *base) digest(ctx context.Context, imageID, ref string) string {
	img, err := c.cli.ImageInspect(ctx, imageID)
	if err != nil {
		return imageID
	}
	if r, err := reference.ParseNormalizedNamed(ref); err == nil {
		if d, ok := r.(reference.Digested); ok {
			return d.Digest().String()
		}
		if d := repoDigest(img.RepoDigests, r.Name()); d != "" {
			return d
		}
	}
	return img.ID
}

// each runs fn on names, par at a time, in name order, and joins errors.
func (c *base) each(ctx context.Context, names []string, par int, fn func(context.Context, string) error) error {
	if par < 1 {
		par = 1
	}
	sem := make(chan struct{}, par)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = c.wrap(name, "wait for a turn", ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
