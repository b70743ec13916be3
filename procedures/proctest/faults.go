package proctest

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Failures and blocks a test injects into the world's outside actions:
// every action goes through act, which records it and applies them.

// Fail makes the next n actions whose first words are prefix fail.
func (w *World) Fail(prefix string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for range n {
		w.fails[prefix] = append(w.fails[prefix], fmt.Errorf("injected failure of %q", prefix))
	}
}

// Block makes the next action starting with prefix wait until released
// (or its context ends).
type Block struct {
	Reached chan struct{} // closed when the action begins
	release chan struct{}
	// finish makes the action ignore its context's end and succeed once
	// released, as an outside call that was already done would.
	finish bool
}

// Release lets the blocked action go on.
func (b *Block) Release() { close(b.release) }

// BlockOn installs a block on the next action starting with prefix.
func (w *World) BlockOn(prefix string) *Block {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := &Block{Reached: make(chan struct{}), release: make(chan struct{})}
	w.blocks[prefix] = b
	return b
}

// HoldOn is BlockOn for an action that completes once released even if
// its context ended meanwhile.
func (w *World) HoldOn(prefix string) *Block {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := &Block{Reached: make(chan struct{}), release: make(chan struct{}), finish: true}
	w.blocks[prefix] = b
	return b
}

// act records an action and applies injected failures and blocks. The
// lock is not held on return.
func (a actor) act(ctx context.Context, action string) error {
	w := a.w
	w.mu.Lock()
	w.actions = append(w.actions, action)
	w.log = append(w.log, Entry{Who: a.who, Action: action, At: time.Now()})
	var blk *Block
	for p, b := range w.blocks {
		if matches(action, p) {
			blk = b
			delete(w.blocks, p)
			break
		}
	}
	var err error
	for p, errs := range w.fails {
		if matches(action, p) && len(errs) > 0 {
			err = errs[0]
			w.fails[p] = errs[1:]
			break
		}
	}
	w.mu.Unlock()
	if blk != nil && blk.finish {
		close(blk.Reached)
		<-blk.release
		w.logReturn(a.who, action)
	} else if blk != nil {
		close(blk.Reached)
		select {
		case <-blk.release:
		case <-ctx.Done():
			err = ctx.Err()
		}
		w.logReturn(a.who, action)
	}
	if err == nil {
		err = sleep(ctx, w.delay(action))
	}
	return err
}

// matches: prefix is the whole action or its first words.
func matches(action, prefix string) bool {
	return action == prefix || strings.HasPrefix(action, prefix+" ")
}
