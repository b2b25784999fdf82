// Package metrics is crier's Prometheus side: delivery outcomes, send
// latency and provider errors as they happen (the dispatcher and planner
// report them), queue depth and schedule lag read from the store at scrape
// time, webhook requests by outcome, and the Go runtime and process. It
// keeps its own registry, never the global default, so two crier servers in
// one test process do not share counters.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
)

// Outcome labels of crier_deliveries_total besides the store's statuses.
const (
	// OutcomeRetry is a send that failed temporarily: the delivery is
	// queued again for a later attempt.
	OutcomeRetry = "retry"
)

// sendBuckets cover a sandbox's microseconds to a provider timing out
// after the default 30s client timeout.
var sendBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Options configure the metrics.
type Options struct {
	// Store is read at scrape time for queue depth and schedule lag; nil
	// leaves those metrics out.
	Store Source
	// Channels are the configured channel instances and their kinds: their
	// queue metrics read 0 rather than vanish when their queue is empty,
	// and their counters start at 0 so the first outcome is a visible
	// increase.
	Channels map[string]channels.Kind
	// Briefings, if set, limits schedule lag to these briefings (a
	// briefing removed from the config stops being reported).
	Briefings []string
	// Now is the clock queue ages are measured with; it must be the
	// store's clock (default time.Now).
	Now func() time.Time
	// Timeout bounds the store queries of one scrape (default 5s).
	Timeout time.Duration
	// Log hears scrape errors (default: discarded).
	Log *slog.Logger
}

// Metrics is crier's metric set on its own registry. It is safe for
// concurrent use.
type Metrics struct {
	reg            *prometheus.Registry
	deliveries     *prometheus.CounterVec
	sendDuration   *prometheus.HistogramVec
	providerErrors *prometheus.CounterVec
	webhooks       *prometheus.CounterVec
	paused         *prometheus.GaugeVec
	pauses         *prometheus.CounterVec
	sender         *prometheus.GaugeVec
	leader         prometheus.Gauge
	log            *slog.Logger
}

var (
	_ dispatch.Observer      = (*Metrics)(nil)
	_ dispatch.LaneObserver  = (*Metrics)(nil)
	_ dispatch.OwnerObserver = (*Metrics)(nil)
)

// New builds the metrics and registers them, with the Go and process
// collectors, on a new registry.
func New(o Options) *Metrics {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_deliveries_total",
			Help: "Delivery outcomes by channel instance, kind, status (sent, failed, expired, retry, suppressed) and reason.",
		}, []string{"channel", "kind", "status", "reason"}),
		sendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crier_send_duration_seconds",
			Help:    "How long each provider send took, successful or not, by channel instance.",
			Buckets: sendBuckets,
		}, []string{"channel"}),
		providerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_provider_errors_total",
			Help: "Sends a provider refused or that failed on the way, by channel instance and classified reason.",
		}, []string{"channel", "reason"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_webhook_requests_total",
			Help: "Provider webhook requests by route and outcome.",
		}, []string{"route", "outcome"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crier_channel_paused",
			Help: "1 while a channel instance is paused (or testing the provider with one message) after a 429, a run of temporary failures or a channel-wide failure; 0 while it sends.",
		}, []string{"channel"}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crier_channel_pauses_total",
			Help: "Times a channel instance was paused, by the reason of the failure that paused it.",
		}, []string{"channel", "reason"}),
		sender: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crier_channel_sender",
			Help: "1 on the crier process that sends a channel whose pace holds for every process on the database (a rate, Slack's pace per destination), 0 on the others.",
		}, []string{"channel"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crier_scheduler_leader",
			Help: "1 on the crier process that runs the briefing scheduler, catch-up, the missed-briefing alarm and escalation; 0 on the others.",
		}),
		log: o.Log,
	}
	m.reg.MustRegister(m.deliveries, m.sendDuration, m.providerErrors, m.webhooks, m.paused, m.pauses, m.sender, m.leader,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if o.Store != nil {
		m.reg.MustRegister(newStoreCollector(o))
	}
	for name, kind := range o.Channels {
		m.deliveries.WithLabelValues(name, string(kind), store.StatusSent, "")
		m.sendDuration.WithLabelValues(name)
		m.paused.WithLabelValues(name)
	}
	return m
}

// LaneOwner records whether this process sends a channel whose pace holds
// for every process on the database.
func (m *Metrics) LaneOwner(channel string, owner bool) {
	v := 0.0
	if owner {
		v = 1
	}
	m.sender.WithLabelValues(channel).Set(v)
}

// Leader records whether this process runs the scheduler.
func (m *Metrics) Leader(leader bool) {
	if leader {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// LaneState records a channel pausing (state paused, with the reason of
// the failure that paused it), testing the provider (probing) or sending
// again.
func (m *Metrics) LaneState(channel, state, reason string) {
	switch state {
	case "sending":
		m.paused.WithLabelValues(channel).Set(0)
	case "paused":
		m.paused.WithLabelValues(channel).Set(1)
		m.pauses.WithLabelValues(channel, reason).Inc()
	default:
		m.paused.WithLabelValues(channel).Set(1)
	}
}

// Observed records one delivery outcome. The dispatcher calls it for every
// send and deadline expiry, the planner for every suppressed delivery; it
// implements dispatch.Observer.
func (m *Metrics) Observed(channel string, kind channels.Kind, status, reason string, latency time.Duration) {
	label := status
	if status == store.StatusQueued {
		label = OutcomeRetry
	}
	m.deliveries.WithLabelValues(channel, string(kind), label, reason).Inc()
	if !sent(status, reason) {
		return
	}
	m.sendDuration.WithLabelValues(channel).Observe(latency.Seconds())
	if status != store.StatusSent {
		m.providerErrors.WithLabelValues(channel, reason).Inc()
	}
}

// sent reports whether an outcome came from a call to the provider. A
// suppressed delivery was never sent, and one that expired with reason
// deadline was given up before its send (the dispatcher's skip); every
// other expiry, failure and retry is a send's classified error.
func sent(status, reason string) bool {
	switch status {
	case store.StatusSent, store.StatusFailed, store.StatusQueued:
		return true
	case store.StatusExpired:
		return reason != "deadline"
	}
	return false
}

// WebhookObserved counts one webhook request; it has the signature of
// server.Options.WebhookObserved.
func (m *Metrics) WebhookObserved(route, outcome string) {
	m.webhooks.WithLabelValues(route, outcome).Inc()
}

// Registry is the registry every crier metric is on (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format. A
// failing store query is logged and leaves its metrics out of that scrape;
// the rest is still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            logAdapter{m.log},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
}

// logAdapter turns promhttp's Println into a structured log line.
type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Println(v ...any) { l.log.Error("metrics scrape", "err", fmt.Sprint(v...)) }
