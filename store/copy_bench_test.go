package store

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/store/storetest"
)

// BenchmarkCopy_SQLiteToPostgres copies a SQLite database of
// $CRIER_BENCH_COPY_DELIVERIES deliveries (default 200,000), each with one
// event, into a fresh PostgreSQL schema, as crier migrate-store does.
// It reports rows a second and the peak Go heap during the copy: rows go
// a batch at a time, so the heap does not grow with the database.
// $CRIER_BENCH_COPY_BATCH sets the rows per INSERT (default: the copy's).
//
//	go test ./store -run '^$' -bench Copy -benchtime 1x
func BenchmarkCopy_SQLiteToPostgres(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("CRIER_BENCH_COPY_DELIVERIES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	src := openForCopy(b, sqliteURL(b))
	for _, q := range []string{
		`INSERT INTO triggers(id, key, kind, created_at) VALUES(1, 'send:bench', 'send', 1)`,
		`INSERT INTO messages(id, hash, text, segments) VALUES(1, x'01', 'Referrals are down in Wales: phone the duty clinician.', 1)`,
		`WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM k WHERE i < ` + strconv.Itoa(n) + `)
		 INSERT INTO deliveries(id, trigger_id, subscriber_id, channel, kind, address, message_id, status, detail, created_at, updated_at, sent_at, provider_id, segments)
		 SELECT i, 1, 'clinician-' || i, 'clinician-sms', 'sms', '+447400' || (100000 + i), 1, 'sent', '', 1764064800000 + i, 1764064800000 + i, 1764064800000 + i, 'SM' || hex(randomblob(16)), 1 FROM k`,
		`INSERT INTO delivery_events(delivery_id, at, status, detail) SELECT id, created_at, 'sent', 'sandbox' FROM deliveries`,
	} {
		if _, err := src.w.db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	rows := int64(0)
	b.ResetTimer()
	var peak uint64
	for range b.N {
		b.StopTimer()
		dst := openForCopy(b, storetest.Postgres(b))
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > base.HeapAlloc && m.HeapAlloc-base.HeapAlloc > peak {
					peak = m.HeapAlloc - base.HeapAlloc
				}
			}
		}()
		b.StartTimer()
		batch, _ := strconv.Atoi(os.Getenv("CRIER_BENCH_COPY_BATCH"))
		res, err := Copy(ctx, dst, src, CopyOptions{BatchRows: batch})
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		rows += res.Rows
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
