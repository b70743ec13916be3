package metrics

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// What is true now, rather than what this process saw happen, is read at
// each scrape from the store and the backups: it is right after a restart
// and on every process that shares a store, whichever one drives a run.

// scrapeTimeout bounds each look-up a scrape makes, so a slow store or
// backup folder makes a scrape short of those series, never hung.
const scrapeTimeout = 5 * time.Second

// checkpointKinds are the questions a run can wait at; each cluster and
// procedure has a waiting series of each from the start, at zero.
var checkpointKinds = []string{"verify", "manual", "failure", "interrupted", "resume"}

var (
	waitingDesc = prometheus.NewDesc(namespace+"_runs_waiting", "Runs waiting for a person's decision now, by cluster, procedure and kind of checkpoint (verify, manual, failure, interrupted, resume); read from the store at each scrape, so every process on one store reports every waiting run.",
		[]string{"cluster", "procedure", "kind"}, nil)
	waitedDesc = prometheus.NewDesc(namespace+"_runs_waiting_seconds", "How long the longest-waiting of those runs has waited for its decision (0: none waits).",
		[]string{"cluster", "procedure", "kind"}, nil)
	storeUpDesc = prometheus.NewDesc(namespace+"_store_up", "1 when this scrape could read the runs from the store; 0 when it could not, and the waiting series are missing.", nil, nil)
	backupDesc  = prometheus.NewDesc(namespace+"_backup_newest_verified_timestamp_seconds", "Unix time of the cluster's newest verified backup (0: none); read from the backup destination at each scrape.",
		[]string{"cluster"}, nil)
	backupUpDesc = prometheus.NewDesc(namespace+"_backup_list_up", "1 when this scrape could list the cluster's backups, 0 when it could not.", []string{"cluster"}, nil)
)

// UnfinishedRuns is the part of the store the waiting series read.
type UnfinishedRuns interface {
	UnfinishedRuns(ctx context.Context) ([]store.Run, error)
}

// WatchStore reports the runs that wait for a decision, read from st at
// each scrape.
func (m *Metrics) WatchStore(st UnfinishedRuns) {
	m.reg.MustRegister(&waitingRuns{st: st, clusters: m.clusters, now: time.Now})
}

type waitingRuns struct {
	st       UnfinishedRuns
	clusters []string
	now      func() time.Time
}

func (w *waitingRuns) Describe(ch chan<- *prometheus.Desc) {
	ch <- waitingDesc
	ch <- waitedDesc
	ch <- storeUpDesc
}

type waitKey struct{ cluster, procedure, kind string }

type waitSum struct {
	n       int
	longest time.Duration
}

func (w *waitingRuns) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	runs, err := w.st.UnfinishedRuns(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 1)
	sums := map[waitKey]waitSum{}
	for _, c := range w.clusters {
		for _, p := range procedures.Procedures() {
			for _, k := range checkpointKinds {
				sums[waitKey{c, p.Name, k}] = waitSum{}
			}
		}
	}
	now := w.now()
	for _, r := range runs {
		if !waiting(r) {
			continue
		}
		k := waitKey{r.Cluster, r.Procedure, r.Checkpoint.Kind}
		s := sums[k]
		s.n++
		s.longest = max(s.longest, now.Sub(r.Checkpoint.Opened))
		sums[k] = s
	}
	for k, s := range sums {
		ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(s.n), k.cluster, k.procedure, k.kind)
		ch <- prometheus.MustNewConstMetric(waitedDesc, prometheus.GaugeValue, s.longest.Seconds(), k.cluster, k.procedure, k.kind)
	}
}

// waiting reports whether a run asks a question nobody has answered: at a
// checkpoint, or stopped after a failure.
func waiting(r store.Run) bool {
	return r.Checkpoint != nil && (r.State == store.StateWaiting || r.State == store.StateFailed)
}

// backupAges lists each cluster's backups at each scrape.
type backupAges struct {
	mu        sync.Mutex
	byCluster map[string]ports.Backups
}

func (b *backupAges) add(cluster string, bk ports.Backups) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byCluster[cluster] = bk
}

func (b *backupAges) Describe(ch chan<- *prometheus.Desc) {
	ch <- backupDesc
	ch <- backupUpDesc
}

func (b *backupAges) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	clusters := make([]string, 0, len(b.byCluster))
	for c := range b.byCluster {
		clusters = append(clusters, c)
	}
	slices.Sort(clusters)
	all := make([]ports.Backups, len(clusters))
	for i, c := range clusters {
		all[i] = b.byCluster[c]
	}
	b.mu.Unlock()
	for i, c := range clusters {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		list, err := all[i].List(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.MustNewConstMetric(backupUpDesc, prometheus.GaugeValue, 0, c)
			continue
		}
		ch <- prometheus.MustNewConstMetric(backupUpDesc, prometheus.GaugeValue, 1, c)
		var newest time.Time
		for _, info := range list {
			if info.Verified && info.Created.After(newest) {
				newest = info.Created
			}
		}
		v := 0.0
		if !newest.IsZero() {
			v = float64(newest.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(backupDesc, prometheus.GaugeValue, v, c)
	}
}
