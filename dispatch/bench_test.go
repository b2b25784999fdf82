package dispatch

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/sandbox"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/storetest"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

const benchSubscribers = 100_000

// benchAudience stores n clinicians spread over the four nations and both
// locales, each with their own mobile number, in one transaction.
func benchAudience(b *testing.B, st *store.Store, n int) {
	b.Helper()
	nations := []string{"england", "scotland", "wales", "northern-ireland"}
	list := make([]subscribers.Subscriber, n)
	for i := range list {
		locale := "en"
		if i%5 == 0 {
			locale = "cy"
		}
		list[i] = subscribers.Subscriber{ID: fmt.Sprintf("s%06d", i), Name: fmt.Sprintf("Clinician %d", i), Roles: []string{"clinician"},
			Nations: []string{nations[i%len(nations)]}, Locale: locale, TimeZone: "Europe/London", Phone: fmt.Sprintf("+4474%08d", i)}
	}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.UpsertSubscribers(list, "import") }); err != nil {
		b.Fatal(err)
	}
}

// heapPeak samples HeapInuse until stop is called and returns the highest
// value seen.
func heapPeak() (stop func() uint64) {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		peak = max(peak, m.HeapInuse)
		mu.Unlock()
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// BenchmarkPlan_100k plans one SMS alert to 100,000 subscribers: selection,
// rendering and the chunked transactions that write every delivery. It
// also reports when the first chunk was committed (the dispatcher could
// start sending from then).
func BenchmarkPlan_100k(b *testing.B) {
	clk := newClock(t0)
	st, _ := openStore(b, clk)
	benchPlan(b, st, clk)
}

// BenchmarkPlan_100k_Postgres is BenchmarkPlan_100k into PostgreSQL (a
// fresh schema on CRIER_TEST_POSTGRES).
func BenchmarkPlan_100k_Postgres(b *testing.B) {
	clk := newClock(t0)
	st, err := store.OpenURL(context.Background(), storetest.Postgres(b), store.WithClock(clk.Now))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	benchPlan(b, st, clk)
}

func benchPlan(b *testing.B, st *store.Store, clk *fakeClock) {
	benchAudience(b, st, benchSubscribers)
	inc, err := incidents.Open(incidents.Change{Title: "Helpline software supplier ransomware attack", Severity: "critical",
		Impacts: []incidents.Impact{
			{Service: "referrals", Nation: "england", Status: incidents.Outage, Workaround: "phone the duty clinician"},
			{Service: "referrals", Nation: "scotland", Status: incidents.Outage, Workaround: "phone the duty clinician"},
			{Service: "prescriptions", Nation: "wales", Status: incidents.Degraded, Workaround: "use paper prescriptions"},
			{Service: "ambulance dispatch", Nation: "northern-ireland", Status: incidents.Outage, Workaround: "radio fallback"},
		}}, t0)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
		b.Fatal(err)
	}
	var firstCommit time.Duration
	var planStart time.Time
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(b, nil), Channels: testChannels,
		Audiences: []Audience{{Name: "clinicians", Selector: subscribers.Selector{Roles: []string{"clinician"}}}}, Now: clk.Now,
		OnCommit: func() {
			if firstCommit == 0 {
				firstCommit = time.Since(planStart)
			}
		}})
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := heapPeak()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		req := Request{Key: fmt.Sprintf("incident:%s:bench-%d", inc.ID, i), Kind: "incident", Name: "open", Incident: inc, Critical: true,
			Targets: []Target{{Audience: "clinicians", Channels: []string{"sms"}, Event: templates.EventAlert}}}
		planStart, firstCommit = time.Now(), 0
		out, err := p.Plan(context.Background(), st, req)
		if err != nil {
			b.Fatal(err)
		}
		if out.Queued != benchSubscribers {
			b.Fatalf("queued %d, want %d", out.Queued, benchSubscribers)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	peak := stop()
	b.ReportMetric(float64(b.N*benchSubscribers)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MB")
	b.ReportMetric(float64(firstCommit.Microseconds())/1000, "first-chunk-ms")
}

// BenchmarkDispatch_Sandbox drains 100,000 queued SMS deliveries through a
// sandbox channel (concurrency 8, no rate limit), every state change
// committed.
func BenchmarkDispatch_Sandbox(b *testing.B) {
	clk := newClock(t0)
	st, _ := openStore(b, clk)
	benchAudience(b, st, benchSubscribers)
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(b, nil), Channels: testChannels,
		Audiences: []Audience{{Name: "clinicians", Selector: subscribers.Selector{Roles: []string{"clinician"}}}}, Now: clk.Now})
	sb, err := sandbox.New("sms", sandbox.Config{Kind: "sms"})
	if err != nil {
		b.Fatal(err)
	}
	ch := &timedChannel{Channel: sb}
	d := New(st, Options{Now: clk.Now})
	d.AddChannel(ch, Limits{Concurrency: 8})
	b.ResetTimer()
	var total, sending time.Duration
	for i := range b.N {
		b.StopTimer()
		out, err := p.Plan(context.Background(), st, message(fmt.Sprintf("send:bench-%d", i), "clinicians", "sms"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := d.Drain(context.Background(), []int64{out.TriggerID}, time.Time{}, nil); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		sending += ch.last().Sub(start)
		b.StopTimer()
		if c, _ := st.Counts(context.Background(), []int64{out.TriggerID}); c[store.StatusSent] != benchSubscribers {
			b.Fatalf("counts %v, want %d sent", c, benchSubscribers)
		}
		b.StartTimer()
	}
	// Drain looks every 500ms, so its own duration is rounded up to that
	// step; the time of the last send shows the throughput underneath.
	b.ReportMetric(float64(b.N*benchSubscribers)/total.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N*benchSubscribers)/sending.Seconds(), "sends/s")
}

// timedChannel notes when its last send returned.
type timedChannel struct {
	channels.Channel
	mu  sync.Mutex
	end time.Time
}

func (c *timedChannel) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	r, err := c.Channel.Send(ctx, m)
	c.mu.Lock()
	c.end = time.Now()
	c.mu.Unlock()
	return r, err
}

func (c *timedChannel) last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end
}

// BenchmarkDispatch_Postgres drains 20,000 queued SMS deliveries through
// sandbox channels (concurrency 8 each) on PostgreSQL, with one, two and
// three dispatchers, each with its own connection pool and claims, as
// separate crier servers would have (here they share this machine's two
// cores with PostgreSQL).
func BenchmarkDispatch_Postgres(b *testing.B) {
	const n = 20_000
	for _, nodes := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			clk := newClock(t0)
			url := storetest.Postgres(b)
			open := func() *store.Store {
				st, err := store.OpenURL(context.Background(), url, store.WithClock(clk.Now))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				return st
			}
			st := open()
			benchAudience(b, st, n)
			p := NewPlanner(PlannerOptions{Templates: loadTemplates(b, nil), Channels: testChannels,
				Audiences: []Audience{{Name: "clinicians", Selector: subscribers.Selector{Roles: []string{"clinician"}}}}, Now: clk.Now})
			var ds []*Dispatcher
			for range nodes {
				sb, err := sandbox.New("sms", sandbox.Config{Kind: "sms"})
				if err != nil {
					b.Fatal(err)
				}
				d := New(open(), Options{Now: clk.Now})
				d.AddChannel(sb, Limits{Concurrency: 8})
				ds = append(ds, d)
			}
			b.ResetTimer()
			var total time.Duration
			for i := range b.N {
				b.StopTimer()
				out, err := p.Plan(context.Background(), st, message(fmt.Sprintf("send:bench-%d", i), "clinicians", "sms"))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for _, d := range ds {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := d.Drain(context.Background(), []int64{out.TriggerID}, time.Time{}, nil); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				total += time.Since(start)
				b.StopTimer()
				if c, _ := st.Counts(context.Background(), []int64{out.TriggerID}); c[store.StatusSent] != n {
					b.Fatalf("counts %v, want %d sent", c, n)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*n)/total.Seconds(), "deliveries/s")
		})
	}
}
