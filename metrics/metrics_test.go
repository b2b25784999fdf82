package metrics_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/metrics"
	"github.com/crier-dev/crier/metrics/metricstest"
	"github.com/crier-dev/crier/store"
)

var t0 = time.Date(2026, 1, 15, 14, 0, 0, 0, time.UTC)

// clock is the fake time the store and the metrics share.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t *testing.T, clk *clock) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "crier.db"), store.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

var kinds = map[string]channels.Kind{"clinician-sms": channels.KindSMS, "ministers-email": channels.KindEmail}

// scrape serves m's handler on 127.0.0.1 and reads it as Prometheus would.
func scrape(t *testing.T, m *metrics.Metrics) metricstest.Samples {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	s, err := metricstest.Scrape(context.Background(), srv.Client(), srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type observation struct {
	channel string
	kind    channels.Kind
	status  string
	reason  string
	latency time.Duration
}

func TestMetrics_Observed_Outcomes(t *testing.T) {
	L := metricstest.L
	for _, c := range []struct {
		name       string
		obs        []observation
		deliveries map[string]float64 // status/reason → crier_deliveries_total of clinician-sms
		errors     map[string]float64 // reason → crier_provider_errors_total of clinician-sms
		sends      float64            // crier_send_duration_seconds_count of clinician-sms
		sum        float64            // crier_send_duration_seconds_sum of clinician-sms
	}{
		{name: "nothing yet: configured channels start at zero",
			deliveries: map[string]float64{"sent/": 0}},
		{name: "sent",
			obs:        []observation{{"clinician-sms", "sms", "sent", "", 200 * time.Millisecond}, {"clinician-sms", "sms", "sent", "", 300 * time.Millisecond}},
			deliveries: map[string]float64{"sent/": 2}, sends: 2, sum: 0.5},
		{name: "permanent failure is a provider error",
			obs:        []observation{{"clinician-sms", "sms", "failed", "bad_address", time.Second}},
			deliveries: map[string]float64{"failed/bad_address": 1}, errors: map[string]float64{"bad_address": 1}, sends: 1, sum: 1},
		{name: "temporary failure is counted as a retry",
			obs:        []observation{{"clinician-sms", "sms", "queued", "server", time.Second}},
			deliveries: map[string]float64{"retry/server": 1, "queued/server": 0}, errors: map[string]float64{"server": 1}, sends: 1, sum: 1},
		{name: "attempts exhausted after a send",
			obs:        []observation{{"clinician-sms", "sms", "expired", "timeout", 2 * time.Second}},
			deliveries: map[string]float64{"expired/timeout": 1}, errors: map[string]float64{"timeout": 1}, sends: 1, sum: 2},
		{name: "deadline passed before the send: no send, no provider error",
			obs:        []observation{{"clinician-sms", "sms", "expired", "deadline", 0}},
			deliveries: map[string]float64{"expired/deadline": 1}, errors: map[string]float64{"deadline": 0}},
		{name: "suppressed at planning: no send",
			obs:        []observation{{"clinician-sms", "sms", "suppressed", "opted_out", 0}, {"clinician-sms", "sms", "suppressed", "no_address", 0}},
			deliveries: map[string]float64{"suppressed/opted_out": 1, "suppressed/no_address": 1}, errors: map[string]float64{"opted_out": 0}},
		{name: "another channel's outcomes stay on it",
			obs:        []observation{{"ministers-email", "email", "failed", "rejected", time.Second}},
			deliveries: map[string]float64{"failed/rejected": 0}, errors: map[string]float64{"rejected": 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := metrics.New(metrics.Options{Channels: kinds})
			for _, o := range c.obs {
				m.Observed(o.channel, o.kind, o.status, o.reason, o.latency)
			}
			s := scrape(t, m)
			sms := L("channel", "clinician-sms")
			for key, want := range c.deliveries {
				status, reason, _ := cut(key)
				match := L("channel", "clinician-sms", "kind", "sms", "status", status, "reason", reason)
				if got := s.Sum("crier_deliveries_total", match); got != want {
					t.Errorf("crier_deliveries_total%v = %v, want %v", match, got, want)
				}
				if want == 0 && status == "sent" && !s.Has("crier_deliveries_total", match) {
					t.Errorf("crier_deliveries_total%v is absent; a configured channel starts at 0", match)
				}
			}
			for reason, want := range c.errors {
				if got := s.Sum("crier_provider_errors_total", L("channel", "clinician-sms", "reason", reason)); got != want {
					t.Errorf("crier_provider_errors_total{reason=%q} = %v, want %v", reason, got, want)
				}
			}
			if got := s.Sum("crier_send_duration_seconds_count", sms); got != c.sends {
				t.Errorf("crier_send_duration_seconds_count = %v, want %v", got, c.sends)
			}
			if got := s.Sum("crier_send_duration_seconds_sum", sms); got < c.sum-1e-9 || got > c.sum+1e-9 {
				t.Errorf("crier_send_duration_seconds_sum = %v, want %v", got, c.sum)
			}
			if !s.Has("crier_send_duration_seconds_count", L("channel", "ministers-email")) {
				t.Error("the histogram of a configured channel is absent before its first send")
			}
		})
	}
}

func cut(key string) (string, string, bool) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

func TestMetrics_WebhookObserved_ByRouteAndOutcome(t *testing.T) {
	m := metrics.New(metrics.Options{})
	for _, o := range [][2]string{{"/webhooks/twilio/status", "ok"}, {"/webhooks/twilio/status", "ok"}, {"/webhooks/twilio/status", "bad_signature"},
		{"/webhooks/twilio/inbound", "ok"}} {
		m.WebhookObserved(o[0], o[1])
	}
	s := scrape(t, m)
	L := metricstest.L
	for _, c := range []struct {
		route, outcome string
		want           float64
	}{
		{"/webhooks/twilio/status", "ok", 2},
		{"/webhooks/twilio/status", "bad_signature", 1},
		{"/webhooks/twilio/inbound", "ok", 1},
		{"/webhooks/twilio/inbound", "bad_signature", 0},
	} {
		if got := s.Sum("crier_webhook_requests_total", L("route", c.route, "outcome", c.outcome)); got != c.want {
			t.Errorf("crier_webhook_requests_total{%s,%s} = %v, want %v", c.route, c.outcome, got, c.want)
		}
	}
}

func TestMetrics_Handler_GoAndProcess(t *testing.T) {
	s := scrape(t, metrics.New(metrics.Options{}))
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes", "process_start_time_seconds"} {
		if !s.Has(name, nil) {
			t.Errorf("%s is missing", name)
		}
	}
}

// Queue depth and age and schedule lag are read from the store at each
// scrape, so they follow the database, not what this process saw.
func TestMetrics_Collect_QueueAndScheduleLag(t *testing.T) {
	clk := &clock{t: t0}
	st := openStore(t, clk)
	ctx := context.Background()
	err := st.Write(ctx, func(tx *store.Tx) error {
		tr := &store.Trigger{Key: "send:q", Kind: "send"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for _, d := range []store.NewDelivery{
			{SubscriberID: "a", Channel: "clinician-sms", Kind: "sms", Address: "+447400000001", Status: store.StatusQueued, Text: "x"},
			{SubscriberID: "b", Channel: "clinician-sms", Kind: "sms", Address: "+447400000002", Status: store.StatusQueued, Text: "x"},
			{SubscriberID: "c", Channel: "clinician-sms", Kind: "sms", Address: "+447400000003", Status: store.StatusQueued, Text: "x", NextAt: t0.Add(time.Hour)},
			{SubscriberID: "d", Channel: "clinician-sms", Kind: "sms", Status: store.StatusSuppressed, Reason: "no_address"},
		} {
			if err := enq.Add(&d); err != nil {
				return err
			}
		}
		return enq.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
	due := t0.Add(-time.Hour)
	for _, r := range []store.ScheduleRun{
		{Schedule: "ministers-daily", DueAt: due.Add(-24 * time.Hour), FiredAt: due.Add(-24*time.Hour + time.Minute)},
		{Schedule: "ministers-daily", DueAt: due, FiredAt: due.Add(90 * time.Second)},
		{Schedule: "removed-briefing", DueAt: due, FiredAt: due},
	} {
		if _, err := st.RecordRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(45 * time.Second)
	m := metrics.New(metrics.Options{Store: st, Channels: kinds, Briefings: []string{"ministers-daily"}, Now: clk.Now})
	s := scrape(t, m)
	L := metricstest.L
	for _, c := range []struct {
		name    string
		labels  map[string]string
		want    float64
		present bool
	}{
		{"crier_queue_depth", L("channel", "clinician-sms"), 3, true},
		{"crier_queue_due", L("channel", "clinician-sms"), 2, true},
		{"crier_queue_oldest_age_seconds", L("channel", "clinician-sms"), 45, true},
		{"crier_queue_depth", L("channel", "ministers-email"), 0, true},
		{"crier_queue_oldest_age_seconds", L("channel", "ministers-email"), 0, true},
		{"crier_schedule_lag_seconds", L("briefing", "ministers-daily"), 90, true},
		{"crier_schedule_lag_seconds", L("briefing", "removed-briefing"), 0, false},
	} {
		if got := s.Sum(c.name, c.labels); got != c.want || s.Has(c.name, c.labels) != c.present {
			t.Errorf("%s%v = %v (present %v), want %v (present %v)", c.name, c.labels, got, s.Has(c.name, c.labels), c.want, c.present)
		}
	}
}

// A store that cannot answer costs its own metrics, not the scrape.
func TestMetrics_Collect_StoreErrorKeepsTheRest(t *testing.T) {
	clk := &clock{t: t0}
	st := openStore(t, clk)
	var logs bytes.Buffer
	m := metrics.New(metrics.Options{Store: st, Channels: kinds, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	m.Observed("clinician-sms", channels.KindSMS, "sent", "", time.Millisecond)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape with a closed store: %s, want 200 with the rest", resp.Status)
	}
	s, err := metricstest.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sum("crier_deliveries_total", metricstest.L("status", "sent")); got != 1 {
		t.Errorf("crier_deliveries_total{status=sent} = %v, want 1", got)
	}
	if s.Has("crier_queue_depth", nil) {
		t.Error("crier_queue_depth served although the store query failed")
	}
	if !bytes.Contains(logs.Bytes(), []byte("metrics scrape")) {
		t.Errorf("the failed store query was not logged:\n%s", logs.String())
	}
}

func TestMetrics_LaneState_PausedAndPauses(t *testing.T) {
	m := metrics.New(metrics.Options{Channels: kinds})
	L := metricstest.L
	if s := scrape(t, m); !s.Has("crier_channel_paused", L("channel", "clinician-sms")) || s.Sum("crier_channel_paused", nil) != 0 {
		t.Fatalf("before any pause: crier_channel_paused present at 0 for every channel, got %v", s.Find("crier_channel_paused", nil))
	}
	for _, st := range []string{"paused", "probing", "paused", "probing"} {
		m.LaneState("clinician-sms", st, "server")
	}
	s := scrape(t, m)
	if got := s.Sum("crier_channel_paused", L("channel", "clinician-sms")); got != 1 {
		t.Errorf("crier_channel_paused while probing = %v, want 1", got)
	}
	if got := s.Sum("crier_channel_pauses_total", L("channel", "clinician-sms", "reason", "server")); got != 2 {
		t.Errorf("crier_channel_pauses_total = %v, want 2 (a failed test message pauses it again)", got)
	}
	m.LaneState("clinician-sms", "sending", "server")
	if got := scrape(t, m).Sum("crier_channel_paused", L("channel", "clinician-sms")); got != 0 {
		t.Errorf("crier_channel_paused after resuming = %v, want 0", got)
	}
}
