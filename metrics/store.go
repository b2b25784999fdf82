package metrics

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crier-dev/crier/store"
)

// Source is what the scrape-time collector reads from the store.
type Source interface {
	QueueStats(ctx context.Context) ([]store.QueueStat, error)
	ScheduleLags(ctx context.Context) ([]store.ScheduleLag, error)
}

// storeCollector reads the outbox and the schedule runs at each scrape:
// they live in the database, so a gauge kept in memory would be wrong after
// a restart, or when the CLI queued deliveries the server sends.
type storeCollector struct {
	o                  Options
	depth, due, oldest *prometheus.Desc
	lag                *prometheus.Desc
}

func newStoreCollector(o Options) *storeCollector {
	return &storeCollector{
		o: o,
		depth: prometheus.NewDesc("crier_queue_depth",
			"Deliveries queued per channel instance, due now or later (retry backoff, quiet hours, digest windows).",
			[]string{"channel"}, nil),
		due: prometheus.NewDesc("crier_queue_due",
			"Queued deliveries per channel instance whose time to send has come.",
			[]string{"channel"}, nil),
		oldest: prometheus.NewDesc("crier_queue_oldest_age_seconds",
			"How long the longest-waiting due delivery per channel instance has been sendable (0 when none is due).",
			[]string{"channel"}, nil),
		lag: prometheus.NewDesc("crier_schedule_lag_seconds",
			"How late the latest occurrence of each briefing schedule fired (fired_at - due_at).",
			[]string{"briefing"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.due
	ch <- c.oldest
	ch <- c.lag
}

// Collect implements prometheus.Collector. A failed query becomes an
// invalid metric: the scrape reports the error and serves the rest.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.Timeout)
	defer cancel()
	c.collectQueue(ctx, ch)
	c.collectLag(ctx, ch)
}

func (c *storeCollector) collectQueue(ctx context.Context, ch chan<- prometheus.Metric) {
	stats, err := c.o.Store.QueueStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	byChannel := make(map[string]store.QueueStat, len(c.o.Channels)+len(stats))
	for name := range c.o.Channels {
		byChannel[name] = store.QueueStat{Channel: name}
	}
	for _, s := range stats {
		byChannel[s.Channel] = s
	}
	names := make([]string, 0, len(byChannel))
	for name := range byChannel {
		names = append(names, name)
	}
	sort.Strings(names)
	now := c.o.Now()
	for _, name := range names {
		s := byChannel[name]
		var age time.Duration
		if !s.OldestDue.IsZero() {
			age = max(0, now.Sub(s.OldestDue))
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Queued), name)
		ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(s.Due), name)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age.Seconds(), name)
	}
}

func (c *storeCollector) collectLag(ctx context.Context, ch chan<- prometheus.Metric) {
	lags, err := c.o.Store.ScheduleLags(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.lag, err)
		return
	}
	for _, l := range lags {
		if len(c.o.Briefings) > 0 && !slices.Contains(c.o.Briefings, l.Schedule) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, l.Lag().Seconds(), l.Schedule)
	}
}
