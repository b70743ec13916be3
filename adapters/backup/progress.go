package backup

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nocobot/nocobot/procedures"
)

// reportSize sends "<label>: 1.2 GB so far (45 MB/s)" every ProgressEvery.
func (m *Manager) reportSize(label string, n *countingWriter, progress procedures.Progress) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(m.opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				b := n.n.Load()
				progress(fmt.Sprintf("%s: %s so far (%s/s)", label, humanBytes(b), humanBytes(int64(float64(b)/time.Since(start).Seconds()))))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// backupDatabase streams pg_dump into the part file and, at the same time,
// into pg_restore, which reads the dump back whole: verification costs no

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// countingWriter counts bytes written through it; the count is read by
// the progress reporter while the copy runs.
type countingWriter struct{ n atomic.Int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}
