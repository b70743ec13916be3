package nocobase

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nocobot/nocobot/ports"
)

// CheckKey asks a running node whether it accepts the API key that plugin
// actions send (pm:list needs it): a rejected key found before the
// downtime costs nothing. The error names where the key comes from, never
// the key.
func (c *Client) CheckKey(ctx context.Context, node ports.Node) error {
	_, err := c.Plugins(ctx, node)
	var he *HTTPError
	if err == nil || !errors.As(err, &he) || (he.Status != http.StatusUnauthorized && he.Status != http.StatusForbidden) {
		return err
	}
	if c.opts.APIKey == "" {
		return fmt.Errorf("%s: no NocoBase API key is configured, and plugin actions need one (set clusters[].nocobase.api_key_env): %w", nodeName(node), err)
	}
	return fmt.Errorf("%s refused the NocoBase API key from %s: %w", nodeName(node), c.keySource(), err)
}

func (c *Client) keySource() string {
	if c.opts.APIKeyEnv != "" {
		return "the environment variable " + c.opts.APIKeyEnv
	}
	return "clusters[].nocobase.api_key_env"
}
