package loadtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/email"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// BenchmarkBriefing_Email100k sends a 100,000-recipient briefing (the
// default briefing templates, text and HTML, with three open incidents:
// about 10.7 KB on the wire) through the SMTP channel to an in-process
// go-smtp sink that accepts at once. The dispatcher runs as under
// `crier serve`: planning commits the first chunk and the dispatcher
// starts sending it while the rest is planned; every delivery is written
// to SQLite before it is sent and its outcome is recorded after.
//
// It reports the planning time, the time from the trigger to the first
// message reaching the sink, the rate from the trigger until every
// outcome is recorded (e2e), the rate at the sink between its first and
// last message (send), and the peak heap. Profile it with
//
//	go test ./internal/loadtest -run '^$' -bench Email100k -benchtime 1x -cpuprofile cpu.out
func BenchmarkBriefing_Email100k(b *testing.B) {
	benchEmail(b, dispatch.Request{Key: "briefing:bench", Kind: "briefing", Name: "ministers-daily", BriefingName: "Ministers' daily briefing",
		Targets: []dispatch.Target{{Audience: "all", Channels: []string{"email"}, Event: templates.EventBriefing}}})
}

// BenchmarkMessage_Email100k is BenchmarkBriefing_Email100k for a short
// ad-hoc message (the default message template: about 2 KB on the wire).
func BenchmarkMessage_Email100k(b *testing.B) {
	benchEmail(b, dispatch.Request{Key: "send:bench", Kind: "send", Name: "bench",
		Subject: "Emergency prescriptions", Body: "Use paper prescriptions until further notice. Details to follow.",
		Targets: []dispatch.Target{{Audience: "all", Channels: []string{"email"}, Event: templates.EventMessage}}})
}

func benchEmail(b *testing.B, req dispatch.Request) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var first, last atomic.Int64
		peer := channeltest.NewSMTPPeer(b, channeltest.SMTPDiscard(), channeltest.SMTPHook(func(stage channeltest.SMTPStage, _ string) error {
			if stage == channeltest.SMTPStageData {
				now := time.Now().UnixNano()
				first.CompareAndSwap(0, now)
				last.Store(now)
			}
			return nil
		}))
		sender, err := email.New("email", email.Config{Host: peer.Host, Port: peer.Port, TLS: email.TLSNone, From: "Briefings <briefings@example.org>",
			PoolSize: 16, Timeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sender.Close() })
		r := newRig(b, n, sender, dispatch.Limits{Concurrency: 16}, dispatch.RetryPolicy{})
		openIncidents(b, r.st)
		ctx, stopDispatcher := context.WithCancel(context.Background())
		running := make(chan error, 1)
		go func() { running <- r.disp.Run(ctx) }()
		stop := make(chan struct{})
		peaks := sampleMemory(stop)
		time.Sleep(50 * time.Millisecond) // the dispatcher is idle, as a server's is
		b.StartTimer()
		start := time.Now()
		out, err := r.planner.Plan(context.Background(), r.st, req)
		if err != nil {
			b.Fatal(err)
		}
		planned := time.Since(start)
		// Counting the trigger's unfinished deliveries reads all of them:
		// wait for the sink first, then for the last outcomes.
		for peer.Count() < n {
			time.Sleep(5 * time.Millisecond)
		}
		for {
			pending, _, err := r.st.Pending(context.Background(), []int64{out.TriggerID})
			if err != nil {
				b.Fatal(err)
			}
			if pending == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		total := time.Since(start)
		b.StopTimer()
		stopDispatcher()
		if err := <-running; err != nil {
			b.Fatal(err)
		}
		close(stop)
		if c := r.counts(b); c["sent"] != n || peer.Count() != n {
			b.Fatalf("sent %d, sink counted %d, want %d", c["sent"], peer.Count(), n)
		}
		b.ReportMetric(planned.Seconds()*1000, "plan_ms")
		b.ReportMetric(float64(time.Duration(first.Load()-start.UnixNano()).Microseconds())/1000, "first_msg_ms")
		b.ReportMetric(float64(n)/time.Duration(last.Load()-first.Load()).Seconds(), "send_msgs/s")
		b.ReportMetric(float64(n)/total.Seconds(), "e2e_msgs/s")
		peaks.report(b)
	}
}

// openIncidents stores three open incidents, so the briefing has content.
func openIncidents(tb testing.TB, st *store.Store) {
	tb.Helper()
	now := time.Now().Add(-2 * time.Hour)
	changes := []incidents.Change{
		{Title: "Helpline referrals down", Severity: "critical", Summary: "The supplier's referral system is offline after a cyber attack.",
			Impacts: []incidents.Impact{{Service: "referrals", Nation: "wales", Status: incidents.Outage, Workaround: "Phone the duty clinician."},
				{Service: "referrals", Nation: "england", Status: incidents.Outage, Workaround: "Phone the duty clinician."}}},
		{Title: "Out-of-hours appointments degraded", Severity: "major", Summary: "Bookings are slow; some fail.",
			Impacts: []incidents.Impact{{Service: "out-of-hours", Nation: "scotland", Status: incidents.Degraded, Workaround: "Book by phone."}}},
		{Title: "Emergency prescriptions on paper", Severity: "major", Summary: "Electronic prescriptions are unavailable.",
			Impacts: []incidents.Impact{{Service: "prescriptions", Nation: "northern-ireland", Status: incidents.Outage, Workaround: "Use paper prescriptions."}}},
	}
	for _, c := range changes {
		inc, err := incidents.Open(c, now)
		if err != nil {
			tb.Fatal(err)
		}
		if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
			tb.Fatal(err)
		}
	}
}
