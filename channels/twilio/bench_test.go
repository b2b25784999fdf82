package twilio_test

import (
	"context"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
)

// benchSend sends b.N messages from parallel goroutines through one Sender
// to a peer and reports messages per second.
func benchSend(b *testing.B, parallelism int, opts ...channeltest.TwilioOption) {
	p := channeltest.NewTwilioPeer(b, opts...)
	s := newSender(b, peerConfig(p))
	msg := channels.Message{DeliveryID: 1, Address: recipient, Text: "[SEV1] Ambulance dispatch degraded in Scotland: use the paper fallback"}
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Send(context.Background(), msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if got := p.Count(); got != b.N {
		b.Errorf("peer got %d requests, want %d", got, b.N)
	}
}

func BenchmarkSender_Send(b *testing.B) { benchSend(b, 1) }

// BenchmarkSender_Send_Latency20ms models a provider answering in 20ms with
// 8 senders per CPU in flight.
func BenchmarkSender_Send_Latency20ms(b *testing.B) {
	benchSend(b, 8, channeltest.WithTwilioLatency(20*time.Millisecond))
}
