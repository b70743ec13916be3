package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/nocobot/nocobot/ports"
)

// Extra is one more part of every backup, beside the database and the
// storage: the Redis queue's pending jobs (adapters/redis). It is saved
// after them and restored after the database and storage are swapped in.
type Extra interface {
	// Part is the file name in the backup folder.
	Part() string
	// Active says whether there is anything to save (a cluster without a
	// Redis queue has no such part).
	Active(ctx context.Context) (bool, error)
	// Save writes the part and says what it saved.
	Save(ctx context.Context, w io.Writer) (string, error)
	// Restore puts back what the part holds and says what it did; it may
	// be repeated.
	Restore(ctx context.Context, r io.Reader) (string, error)
}

// ExtraRecord says in the manifest what an extra part holds.
type ExtraRecord struct {
	Part    string `json:"part"`
	Summary string `json:"summary"`
}

// saveExtras writes the active extras into dir and returns their parts.
func (m *Manager) saveExtras(ctx context.Context, dir string, progress ports.Progress) ([]Part, []ExtraRecord, error) {
	var parts []Part
	var recs []ExtraRecord
	for _, x := range m.opts.Extras {
		on, err := x.Active(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", x.Part(), err)
		}
		if !on {
			continue
		}
		var summary string
		p, err := m.createPart(ctx, dir, x.Part(), x.Part(), progress, func(ctx context.Context, w io.Writer) error {
			var err error
			summary, err = x.Save(ctx, w)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", x.Part(), err)
		}
		progress(summary)
		parts = append(parts, p)
		recs = append(recs, ExtraRecord{Part: x.Part(), Summary: summary})
	}
	return parts, recs, nil
}

// restoreExtras puts back the backup's extra parts (their checksums were
// verified with the others). An extra the cluster no longer has, or a
// part the backup lacks, is reported, not an error: the database and
// storage are back either way.
func (m *Manager) restoreExtras(ctx context.Context, dir string, man *Manifest, progress ports.Progress) error {
	for _, x := range m.opts.Extras {
		has := slices.ContainsFunc(man.Extras, func(r ExtraRecord) bool { return r.Part == x.Part() })
		on, err := x.Active(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", x.Part(), err)
		}
		switch {
		case !has && on:
			progress(fmt.Sprintf("%s: the backup holds none (taken without it): left as it is", x.Part()))
			continue
		case !has:
			continue
		case !on:
			progress(fmt.Sprintf("%s: the backup holds it, but the cluster has none now: left out", x.Part()))
			continue
		}
		f, err := os.Open(filepath.Join(dir, x.Part()))
		if err != nil {
			return fmt.Errorf("%s: %w", x.Part(), err)
		}
		summary, err := x.Restore(ctx, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", x.Part(), err)
		}
		progress(summary)
		m.log.Info().Str("part", x.Part()).Str("summary", summary).Msg("extra part restored")
	}
	return nil
}
