package app

import (
	"github.com/nocobot/nocobot/config"
	"github.com/nocobot/nocobot/notify"
)

// notifier builds the outgoing webhooks (webhooks:) with the secrets the
// configuration names; they are read here and never logged.
func (a *App) notifier(version string) (*notify.Notifier, error) {
	var hooks []notify.Webhook
	var names []string
	for _, w := range a.Config.Webhooks {
		f := "webhooks (" + w.Name + ")"
		u, err := config.WebhookURL(w, f)
		if err != nil {
			return nil, err
		}
		secret, err := config.Secret(f+".secret_env", w.SecretEnv)
		if err != nil {
			return nil, err
		}
		auth, err := config.Secret(f+".authorization_env", w.AuthorizationEnv)
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, notify.Webhook{Name: w.Name, URL: u, Secret: []byte(secret), Authorization: auth,
			Events: w.Events, Clusters: w.Clusters, Timeout: w.Timeout.D(), Attempts: w.Attempts})
		names = append(names, w.Name)
	}
	a.Metrics.Webhooks(names...)
	return notify.New(notify.Options{Webhooks: hooks, Log: a.Log, Observe: a.Metrics.WebhookDelivery, UserAgent: "nocobot/" + version, Store: a.Store})
}
