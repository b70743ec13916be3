package metrics

// SlackAPIError counts one failed Slack API call attempt; the Slack front
// calls it (as its APIErrorHook) with the method and the error's code.
func (m *Metrics) SlackAPIError(method, code string) {
	m.slackErrors.WithLabelValues(method, code).Inc()
}
