package backup

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
)

// reportSize sends "<label>: 1.2 GB so far (45 MB/s)" every ProgressEvery.
func (m *Manager) reportSize(label string, n *countingWriter, progress ports.Progress) func() {
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
				progress(fmt.Sprintf("%s: %s so far (%s/s)", label, format.Bytes(b), format.Bytes(int64(float64(b)/time.Since(start).Seconds()))))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// countingWriter counts bytes written through it; the count is read by
// the progress reporter while the copy runs.
type countingWriter struct{ n atomic.Int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}
