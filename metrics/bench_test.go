package metrics_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/crier-dev/crier/metrics"
	"github.com/crier-dev/crier/store"
)

// BenchmarkMetrics_Gather_LargeQueue measures one scrape's cost with a
// broadcast's worth of deliveries queued: the queue gauges are read from
// the database at every scrape.
func BenchmarkMetrics_Gather_LargeQueue(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("queued=%d", n), func(b *testing.B) {
			clk := &clock{t: t0}
			st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "crier.db"), store.WithClock(clk.Now))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			err = st.Write(context.Background(), func(tx *store.Tx) error {
				tr := &store.Trigger{Key: "send:bench", Kind: "send"}
				if _, err := tx.CreateTrigger(tr); err != nil {
					return err
				}
				enq, err := tx.Enqueuer(tr.ID)
				if err != nil {
					return err
				}
				defer enq.Close()
				chans := []string{"clinician-sms", "ministers-email", "response-slack"}
				for i := range n {
					d := store.NewDelivery{SubscriberID: fmt.Sprint("s", i), Channel: chans[i%3], Kind: "sms", Address: fmt.Sprint("+4474", i),
						Status: store.StatusQueued, Text: "Referrals are down in Wales."}
					if err := enq.Add(&d); err != nil {
						return err
					}
				}
				return enq.Flush()
			})
			if err != nil {
				b.Fatal(err)
			}
			m := metrics.New(metrics.Options{Store: st, Channels: kinds, Now: clk.Now})
			for b.Loop() {
				if _, err := m.Registry().Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
