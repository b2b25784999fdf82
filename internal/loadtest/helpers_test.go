package loadtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// installation is the installation id email senders derive Message-IDs
// from, of the form the store makes. A channel is built before its rig's
// store, so it is not that store's own id; the hash costs the same.
const installation = "3c9e0b7a5f2d4186a0e9c7b5d3f1a248"

// rig is a store with n subscribers, a planner and a dispatcher over one channel.
type rig struct {
	st      *store.Store
	planner *dispatch.Planner
	disp    *dispatch.Dispatcher
	ch      channels.Channel
}

func newRig(tb testing.TB, n int, ch channels.Channel, limits dispatch.Limits, retry dispatch.RetryPolicy) *rig {
	tb.Helper()
	return newRigAt(tb, n, ch, limits, retry, nil)
}

// newRigAt is newRig on the clock now (nil: the real one), for the store,
// the planner and the dispatcher alike.
func newRigAt(tb testing.TB, n int, ch channels.Channel, limits dispatch.Limits, retry dispatch.RetryPolicy, now func() time.Time) *rig {
	tb.Helper()
	ctx := context.Background()
	var opts []store.Option
	if now != nil {
		opts = append(opts, store.WithClock(now))
	}
	st, err := store.Open(ctx, filepath.Join(tb.TempDir(), "crier.db"), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	people := make([]subscribers.Subscriber, n)
	for i := range people {
		people[i] = subscribers.Subscriber{ID: fmt.Sprintf("s%06d", i), Name: fmt.Sprintf("Person %d", i), Roles: []string{"staff"},
			Nations: []string{"wales"}, Locale: "en", TimeZone: "Europe/London",
			Phone: fmt.Sprintf("+4474%08d", i), Email: fmt.Sprintf("person%d@example.org", i)}
	}
	if err := st.Write(ctx, func(tx *store.Tx) error { return tx.UpsertSubscribers(people, "test") }); err != nil {
		tb.Fatal(err)
	}
	tmpl, err := templates.Load("")
	if err != nil {
		tb.Fatal(err)
	}
	disp := dispatch.New(st, dispatch.Options{Retry: retry, Poll: 5 * time.Millisecond, Now: now})
	disp.AddChannel(ch, limits)
	planner := dispatch.NewPlanner(dispatch.PlannerOptions{Templates: tmpl, Channels: map[string]channels.Kind{ch.Name(): ch.Kind()},
		Audiences: []dispatch.Audience{{Name: "all", Selector: subscribers.Selector{Roles: []string{"staff"}}}}, Retry: retry,
		OnCommit: disp.Notify, Now: now})
	return &rig{st: st, planner: planner, disp: disp, ch: ch}
}

func (r *rig) send(tb testing.TB, key string) dispatch.Outcome {
	tb.Helper()
	out, err := r.planner.Plan(context.Background(), r.st, dispatch.Request{Key: key, Kind: "send", Name: "load",
		Subject: "Emergency prescriptions", Body: "Use paper prescriptions until further notice. Details to follow.",
		Targets: []dispatch.Target{{Audience: "all", Channels: []string{r.ch.Name()}, Event: templates.EventMessage}}})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func (r *rig) counts(tb testing.TB) map[string]int {
	tb.Helper()
	c, err := r.st.Counts(context.Background(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// memoryPeaks samples the process's memory from now until stop is closed.
// It first collects the setup's garbage (the subscriber list written to
// SQLite, ...) and resets the kernel's peak-RSS mark, so that the peaks
// are the workload's: heap is the Go heap in use (read through
// runtime/metrics, which does not stop the world as ReadMemStats does);
// rss is the whole process's resident peak, SQLite's page cache and the
// in-process SMTP sink included (0 where /proc cannot say).
type memoryPeaks struct {
	heap atomic.Uint64
	done chan struct{}
}

func sampleMemory(stop <-chan struct{}) *memoryPeaks {
	debug.FreeOSMemory()                                      // a collection, then the freed memory back to the OS
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM (Linux)
	p := &memoryPeaks{done: make(chan struct{})}
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	go func() {
		defer close(p.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			if in := samples[0].Value.Uint64() + samples[1].Value.Uint64(); in > p.heap.Load() {
				p.heap.Store(in)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// report adds the peaks to b's metrics once sampling has stopped.
func (p *memoryPeaks) report(b *testing.B) {
	<-p.done
	b.ReportMetric(float64(p.heap.Load())/(1<<20), "peak_heap_MiB")
	if rss := peakRSS(); rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "peak_rss_MiB")
	}
}

// peakRSS reads the process's resident high-water mark (VmHWM), in bytes.
func peakRSS() uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
