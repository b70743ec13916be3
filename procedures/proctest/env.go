package proctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Each node has its own environment, as plain containers do. A cluster
// uses it only when a test sets Cluster.NodeEnv (to the World): by
// default the nodes share one, as a Swarm service's do.

var _ interface {
	EnvHashes(context.Context, string) (map[string]string, error)
	SetEnv(context.Context, string, string, string) error
} = actor{}

// SetNodeEnv sets a variable on a node as its configuration had it from
// the start (nothing is recorded).
func (w *World) SetNodeEnv(name, key, value string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, err := w.find(name); err == nil {
		if n.env == nil {
			n.env = map[string]string{}
		}
		n.env[key] = value
	}
}

// EnvHashes implements procedures.NodeEnv; a read, not recorded.
func (a actor) EnvHashes(ctx context.Context, name string) (map[string]string, error) {
	w := a.w
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.find(name)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range n.env {
		sum := sha256.Sum256([]byte(v))
		out[k] = hex.EncodeToString(sum[:])
	}
	return out, nil
}

// SetEnv implements procedures.NodeEnv: "set-env <node> KEY=value" (or
// "KEY=" to remove) is recorded when it changes something.
func (a actor) SetEnv(ctx context.Context, name, key, value string) error {
	w := a.w
	w.mu.Lock()
	n, err := w.find(name)
	if err == nil && n.running {
		err = fmt.Errorf("%s: node is running: stop it first", name)
	}
	if err != nil {
		w.mu.Unlock()
		return err
	}
	old, had := n.env[key]
	w.mu.Unlock()
	if value == old && (value != "") == had {
		return nil
	}
	if err := a.act(ctx, "set-env "+name+" "+key+"="+value); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n.env == nil {
		n.env = map[string]string{}
	}
	if value == "" {
		delete(n.env, key)
	} else {
		n.env[key] = value
	}
	return nil
}
