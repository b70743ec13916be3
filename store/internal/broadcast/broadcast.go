// Package broadcast fans decision notifications out to the watchers of
// one store. Both stores use it: SQLite feeds it from a poll of the
// decisions table, PostgreSQL from its LISTEN connection.
package broadcast

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed: the store, and with it the broadcaster, is closed.
var ErrClosed = errors.New("store closed")

// Broadcaster delivers run ids to every subscriber. A subscriber that
// falls behind loses wake-ups, never decisions: those are in the store,
// and the engine polls it as well.
type Broadcaster struct {
	mu     sync.Mutex
	subs   map[chan string]struct{}
	done   chan struct{}
	closed bool
}

// New returns an open broadcaster.
func New() *Broadcaster {
	return &Broadcaster{subs: map[chan string]struct{}{}, done: make(chan struct{})}
}

// Subscribe returns a channel of run ids that closes when ctx ends or the
// broadcaster closes.
func (b *Broadcaster) Subscribe(ctx context.Context) (<-chan string, error) {
	ch := make(chan string, 64)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-b.done:
		}
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
		close(ch)
	}()
	return ch, nil
}

// Publish delivers runID to every subscriber without waiting for any.
func (b *Broadcaster) Publish(runID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- runID:
		default:
		}
	}
}

// Len is the number of subscribers.
func (b *Broadcaster) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Close ends every subscription; their channels close shortly after.
func (b *Broadcaster) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}
