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
// last message (send), and the peak heap and RSS of this process. It runs
// twice, with the sink in a process of its own and in this one (see
// benchEmail). Profile it with
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

// benchEmail runs req twice: to a sink in a process of its own (as a
// mail server would be, with its own runtime and Go's default collector
// settings), and to a sink in this process (sharing crier's runtime).
func benchEmail(b *testing.B, req dispatch.Request) {
	b.Run("sink_own_process", func(b *testing.B) { benchEmailTo(b, req, true) })
	b.Run("sink_in_process", func(b *testing.B) { benchEmailTo(b, req, false) })
}

func benchEmailTo(b *testing.B, req dispatch.Request, ownProcess bool) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// sent is when the sink had the first and the last message (Unix
		// nanoseconds), once it has all n, and a sink process's CPU time.
		var host string
		var port int
		var sent func() [3]int64
		if ownProcess {
			p := startSinkProcess(b, n)
			host, port = p.host, p.port
			sent = func() [3]int64 { return <-p.done }
		} else {
			var first, last atomic.Int64
			peer := channeltest.NewSMTPPeer(b, channeltest.SMTPDiscard(), channeltest.SMTPHook(func(stage channeltest.SMTPStage, _ string) error {
				if stage == channeltest.SMTPStageData {
					now := time.Now().UnixNano()
					first.CompareAndSwap(0, now)
					last.Store(now)
				}
				return nil
			}))
			host, port = peer.Host, peer.Port
			sent = func() [3]int64 {
				for peer.Count() < n {
					time.Sleep(5 * time.Millisecond)
				}
				return [3]int64{first.Load(), last.Load(), 0}
			}
		}
		sender, err := email.New("email", email.Config{Host: host, Port: port, TLS: email.TLSNone, From: "Briefings <briefings@example.org>",
			PoolSize: 16, Timeout: 10 * time.Second}, email.WithInstallation(installation))
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
		start, cpu0 := time.Now(), cpuTime()
		out, err := r.planner.Plan(context.Background(), r.st, req)
		if err != nil {
			b.Fatal(err)
		}
		planned := time.Since(start)
		// Counting the trigger's unfinished deliveries reads all of them:
		// wait for the sink first, then for the last outcomes.
		at := sent()
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
		total, cpu := time.Since(start), cpuTime()-cpu0
		b.StopTimer()
		stopDispatcher()
		if err := <-running; err != nil {
			b.Fatal(err)
		}
		close(stop)
		if c := r.counts(b); c["sent"] != n {
			b.Fatalf("sent %d, want %d", c["sent"], n)
		}
		b.ReportMetric(planned.Seconds()*1000, "plan_ms")
		b.ReportMetric(float64(time.Duration(at[0]-start.UnixNano()).Microseconds())/1000, "first_msg_ms")
		b.ReportMetric(float64(n)/time.Duration(at[1]-at[0]).Seconds(), "send_msgs/s")
		b.ReportMetric(float64(n)/total.Seconds(), "e2e_msgs/s")
		// CPU per message: this process's (crier, and the sink when it
		// runs here) and a sink process's, up to its last message.
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu_µs/msg")
		if at[2] > 0 {
			b.ReportMetric(float64(time.Duration(at[2]).Microseconds())/n, "sink_cpu_µs/msg")
		}
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
