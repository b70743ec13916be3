package proctest

import (
	"context"
	"fmt"

	"github.com/nocobot/nocobot/ports"
)

// CheckKey implements procedures.App, recorded as "key-check <node>";
// Fail("key-check", 1) makes the node refuse the key.
func (a actor) CheckKey(ctx context.Context, n ports.Node) error {
	if err := a.act(ctx, "key-check "+n.Name); err != nil {
		return fmt.Errorf("%s refused the NocoBase API key from the environment variable NB_API_KEY: %w", n.Name, err)
	}
	return nil
}
