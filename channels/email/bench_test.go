package email

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/crier-dev/crier/channels/channeltest"
)

// BenchmarkSender_Send pushes messages from many goroutines through the
// pool to a peer that only counts them.
func BenchmarkSender_Send(b *testing.B) {
	for _, pool := range []int{1, 4} {
		b.Run("pool="+strconv.Itoa(pool), func(b *testing.B) {
			p := channeltest.NewSMTPPeer(b, channeltest.SMTPDiscard())
			s := newSender(b, peerConfig(p, func(c *Config) { c.PoolSize = pool }))
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					m := message("bench-" + strconv.FormatInt(n.Add(1), 10))
					if _, err := s.Send(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if p.Count() != int(n.Load()) {
				b.Errorf("peer counted %d messages, sent %d", p.Count(), n.Load())
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
