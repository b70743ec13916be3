// Package metrics is nocobot's Prometheus instrumentation: what its runs,
// steps, checkpoints, backups, windows and webhooks did, read from the
// engine's events where the events say it, and from thin wrappers where
// they do not (backup sizes); and what is true now (runs waiting for a
// decision, the newest verified backup), read at each scrape from the
// store and the backups. A front adds its own collectors (Register).
// Each Metrics has its own registry: nothing is registered globally.
package metrics

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nocobot/nocobot/internal/buildinfo"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

const namespace = "nocobot"

// Metrics holds nocobot's collectors and the registry they live in.
type Metrics struct {
	reg      *prometheus.Registry
	clusters []string
	backups  *backupAges // the clusters' backups, for the newest one's age

	runsStarted     *prometheus.CounterVec   // cluster, procedure
	runsFinished    *prometheus.CounterVec   // cluster, procedure, outcome
	runsResumed     *prometheus.CounterVec   // cluster
	stepSeconds     *prometheus.HistogramVec // cluster, procedure, step, outcome
	maintenanceSecs *prometheus.HistogramVec // cluster, procedure
	checkpointWait  *prometheus.HistogramVec // cluster, procedure, kind
	backupSeconds   *prometheus.HistogramVec // cluster, operation
	backupBytes     *prometheus.HistogramVec // cluster, operation
	backupFailures  *prometheus.CounterVec   // cluster, operation
	windowLateness  prometheus.Histogram
	windowEvents    *prometheus.CounterVec // kind
	eventsMissed    prometheus.Counter
	webhooks        *prometheus.CounterVec // webhook, outcome
}

// Step and wait durations run from seconds (a load balancer switch) to
// hours (a restore, a checkpoint nobody answers at night).
var longBuckets = []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// New makes the collectors and registers them, with the Go runtime's, the
// process's and the build's, in a registry of their own. The counters of
// the clusters named exist from the start at zero, so that a rate or an
// increase over them is right from the first run on.
func New(clusters ...string) *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		clusters: clusters,
		backups:  &backupAges{byCluster: map[string]ports.Backups{}},
		runsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "runs_started_total",
			Help: "Runs started by this process, by cluster and procedure."}, []string{"cluster", "procedure"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "runs_total",
			Help: "Runs finished while this process drove them, by cluster, procedure and outcome (succeeded, rolled_back, aborted)."}, []string{"cluster", "procedure", "outcome"}),
		runsResumed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "lease_takeovers_total",
			Help: "Unfinished runs this process took over after their owner's lease lapsed (a restart, or another replica gone), by cluster."}, []string{"cluster"}),
		stepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "step_duration_seconds",
			Help: "Time each step took, by cluster, procedure, step and outcome (done, failed).", Buckets: longBuckets}, []string{"cluster", "procedure", "step", "outcome"}),
		maintenanceSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "maintenance_page_seconds",
			Help: "How long each finished run kept users on the 503 maintenance page, by cluster and procedure.", Buckets: longBuckets}, []string{"cluster", "procedure"}),
		checkpointWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "checkpoint_wait_seconds",
			Help: "Time from a question (verify, manual, failure, …) to its decision, by cluster, procedure and kind.", Buckets: longBuckets}, []string{"cluster", "procedure", "kind"}),
		backupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "backup_duration_seconds",
			Help: "Time taken by successful backups (with their verification) and restores, by cluster and operation.", Buckets: longBuckets}, []string{"cluster", "operation"}),
		backupBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "backup_bytes",
			Help:    "Size of the backups taken and restored (database and storage), by cluster and operation.",
			Buckets: prometheus.ExponentialBuckets(1<<20, 4, 12)}, []string{"cluster", "operation"}),
		backupFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "backup_failures_total",
			Help: "Backups and restores that failed, by cluster and operation."}, []string{"cluster", "operation"}),
		windowLateness: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "window_start_lateness_seconds",
			Help:    "How late the scheduler started each maintenance window's run after its start time.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300, 900}}),
		windowEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "window_events_total",
			Help: "Maintenance window events, by kind (announced, approval, started, skipped, missed, overrun)."}, []string{"kind"}),
		eventsMissed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "metrics_events_missed_total",
			Help: "Engine events the metrics fell too far behind to count: the figures above are short by these."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "webhook_deliveries_total",
			Help: "Outgoing webhook deliveries, by webhook and outcome (delivered, retried: an attempt failed and another follows, failed: every attempt failed, dropped: the queue was full)."}, []string{"webhook", "outcome"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.runsStarted, m.runsFinished, m.runsResumed, m.stepSeconds, m.maintenanceSecs, m.checkpointWait,
		m.backupSeconds, m.backupBytes, m.backupFailures, m.windowLateness, m.windowEvents, m.eventsMissed,
		m.webhooks, buildInfo(buildinfo.Get()), m.backups,
	)
	for _, c := range clusters {
		for _, p := range procedures.Procedures() {
			m.runsStarted.WithLabelValues(c, p.Name)
			for _, s := range []store.RunState{store.StateSucceeded, store.StateRolledBack, store.StateAborted} {
				m.runsFinished.WithLabelValues(c, p.Name, outcome(s))
			}
		}
		m.runsResumed.WithLabelValues(c)
		for _, op := range []string{"backup", "restore"} {
			m.backupFailures.WithLabelValues(c, op)
		}
	}
	for _, k := range windowKinds {
		m.windowEvents.WithLabelValues(windowKind(k))
	}
	return m
}

// Register adds a front's own collectors (the Slack front's API errors)
// to the registry /metrics shows. A collector registered already is left
// as it is.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// buildInfo is the constant 1 labelled with what runs, as Prometheus' own
// *_build_info: a dashboard joins on it, an alert sees a version change.
func buildInfo(i buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which nocobot runs (version, revision, goversion).",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Commit, "goversion": i.Go}})
	g.Set(1)
	return g
}

// WebhookDelivery counts one outgoing webhook delivery's outcome; the
// notifier calls it.
func (m *Metrics) WebhookDelivery(webhook, outcome string) {
	m.webhooks.WithLabelValues(webhook, outcome).Inc()
}

// Webhooks makes the delivery counters of the webhooks named exist at zero.
func (m *Metrics) Webhooks(names ...string) {
	for _, n := range names {
		for _, o := range []string{"delivered", "retried", "failed", "dropped"} {
			m.webhooks.WithLabelValues(n, o)
		}
	}
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Gatherer is the registry, for tests and for mounting elsewhere.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }
