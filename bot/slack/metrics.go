package slack

import "github.com/prometheus/client_golang/prometheus"

// APIErrorCounter is nocobot_slack_api_errors_total: failed Slack API
// call attempts by method and code. Register it where /metrics is
// served and hand Count to ObserveAPIErrors.
type APIErrorCounter struct{ vec *prometheus.CounterVec }

// NewAPIErrorCounter makes the counter, registered nowhere yet.
func NewAPIErrorCounter() APIErrorCounter {
	return APIErrorCounter{prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "nocobot", Name: "slack_api_errors_total",
		Help: "Failed Slack API call attempts, by method and error (Slack's code, http_NNN, timeout or network)."}, []string{"method", "error"})}
}

// Collector is what a registry registers.
func (c APIErrorCounter) Collector() prometheus.Collector { return c.vec }

// Count counts one failed attempt; it is an APIErrorHook.
func (c APIErrorCounter) Count(method, code string) { c.vec.WithLabelValues(method, code).Inc() }
