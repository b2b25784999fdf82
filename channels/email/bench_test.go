package email

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
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

// BenchmarkSender_Broadcast sends b.N messages from 8 goroutines over a
// pool of 8 connections to a peer that only counts them, as the
// dispatcher does for a broadcast. The message is the default template's
// rendered message event (templates' golden files). It reports the rate
// and the process CPU time (user + system, the peer's included) per
// message. "same" gives every recipient the same subject and body;
// "distinct" makes every body different. The "-batch16" variants hand
// SendBatch 16 messages at a time, as the dispatcher does on a busy lane.
//
//	go test ./channels/email -run '^$' -bench Broadcast -benchtime 20000x
func BenchmarkSender_Broadcast(b *testing.B) {
	base := goldenMessage(b)
	for _, variant := range []struct {
		content string
		batch   int
	}{{"same", 1}, {"distinct", 1}, {"same", 16}, {"distinct", 16}} {
		content := variant.content
		name := content
		if variant.batch > 1 {
			name += "-batch" + strconv.Itoa(variant.batch)
		}
		b.Run(name, func(b *testing.B) {
			p := channeltest.NewSMTPPeer(b, channeltest.SMTPDiscard())
			s := newSender(b, peerConfig(p, func(c *Config) { c.PoolSize = 8 }))
			// Open the pool's connections before measuring.
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					m := base
					m.Key = "warm-" + strconv.Itoa(i)
					send(b, s, m)
				})
			}
			wg.Wait()

			var next atomic.Int64
			var failed atomic.Bool
			before := cpuTime(b)
			b.ResetTimer()
			for range 8 {
				wg.Go(func() {
					ctx := context.Background()
					ms := make([]channels.Message, 0, variant.batch)
					for {
						last := next.Add(int64(variant.batch))
						first := last - int64(variant.batch) + 1
						if first > int64(b.N) || failed.Load() {
							return
						}
						ms = ms[:0]
						for i := first; i <= min(last, int64(b.N)); i++ {
							n := strconv.FormatInt(i, 10)
							m := base
							m.Key = "brief/bench/sub-" + n + "/email"
							m.Address = "person" + n + "@example.org"
							if content == "distinct" {
								m.Text += "\nReference " + n + "."
							}
							ms = append(ms, m)
						}
						if variant.batch == 1 {
							if _, err := s.Send(ctx, ms[0]); err != nil {
								b.Error(err)
								failed.Store(true)
								return
							}
							continue
						}
						for _, r := range s.SendBatch(ctx, ms) {
							if r.Err != nil {
								b.Error(r.Err)
								failed.Store(true)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu := cpuTime(b) - before
			if got := p.Count() - 8; got != b.N {
				b.Errorf("peer counted %d messages, sent %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/msg")
		})
	}
}

// goldenMessage is the default English template's message event as
// rendered for email, read from the templates package's golden files.
func goldenMessage(tb testing.TB) channels.Message {
	tb.Helper()
	part := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "templates", "testdata", "golden", "en", "message.email."+name))
		if err != nil {
			tb.Fatal(err)
		}
		return string(b)
	}
	return channels.Message{
		Key:     "brief/bench/sub-0/email",
		Address: "minister@example.gov",
		Subject: strings.TrimSpace(part("subject")),
		Text:    part("text"),
		HTML:    part("html"),
	}
}

// cpuTime is the user and system CPU time this process has used so far.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
