package loadtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/email"
	"github.com/crier-dev/crier/dispatch"
)

// BenchmarkBriefing_Email100k sends a 100,000-recipient email broadcast
// through the SMTP channel (a pool of connections) to an in-process go-smtp
// sink that accepts at once, every delivery planned and recorded in SQLite.
// It reports the planning time (render + one transaction), the time from
// the trigger to the first message arriving at the sink, the send rate
// after planning, the end-to-end rate and the peak heap. Profile it with
//
//	go test ./internal/loadtest -run '^$' -bench Email100k -benchtime 1x -cpuprofile cpu.out
func BenchmarkBriefing_Email100k(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var first atomic.Int64
		peer := channeltest.NewSMTPPeer(b, channeltest.SMTPDiscard(), channeltest.SMTPHook(func(stage channeltest.SMTPStage, _ string) error {
			if stage == channeltest.SMTPStageData && first.Load() == 0 {
				first.CompareAndSwap(0, time.Now().UnixNano())
			}
			return nil
		}))
		sender, err := email.New("email", email.Config{Host: peer.Host, Port: peer.Port, TLS: email.TLSNone, From: "Briefings <briefings@example.org>",
			PoolSize: 8, Timeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sender.Close() })
		r := newRig(b, n, sender, dispatch.Limits{Concurrency: 8}, dispatch.RetryPolicy{})
		stop := make(chan struct{})
		peak := peakHeap(stop)
		b.StartTimer()
		start := time.Now()
		out := r.send(b, "bench")
		planned := time.Since(start)
		if err := r.disp.Drain(context.Background(), []int64{out.TriggerID}, time.Time{}, nil); err != nil {
			b.Fatal(err)
		}
		total := time.Since(start)
		b.StopTimer()
		close(stop)
		if c := r.counts(b); c["sent"] != n || peer.Count() != n {
			b.Fatalf("sent %d, sink counted %d, want %d", c["sent"], peer.Count(), n)
		}
		b.ReportMetric(planned.Seconds()*1000, "plan_ms")
		b.ReportMetric(float64(time.Duration(first.Load()-start.UnixNano()).Milliseconds()), "first_msg_ms")
		b.ReportMetric(float64(n)/(total-planned).Seconds(), "send_msgs/s")
		b.ReportMetric(float64(n)/total.Seconds(), "e2e_msgs/s")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak_heap_MiB")
	}
}
