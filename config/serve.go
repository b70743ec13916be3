package config

import (
	"net"
	"strconv"
)

// HTTP is the operations endpoint: /healthz, /readyz and /metrics.
type HTTP struct {
	// Listen is host:port, e.g. 127.0.0.1:9090; empty: no endpoint.
	Listen string `yaml:"listen"`
}

// SlackOff is the Slack mode of a bot that serves without Slack: the
// engine, the windows and the HTTP endpoint run; people use the terminal.
const SlackOff = "off"

// On reports whether serve connects to Slack.
func (s Slack) On() bool { return s.Mode != SlackOff }

func (h HTTP) validate() error {
	if h.Listen == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		return fieldError("http.listen", "%q: expected host:port, e.g. 127.0.0.1:9090", h.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fieldError("http.listen", "%q: %q is not a port", h.Listen, port)
	}
	return nil
}
