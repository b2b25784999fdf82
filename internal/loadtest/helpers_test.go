package loadtest

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// rig is a store with n subscribers, a planner and a dispatcher over one channel.
type rig struct {
	st      *store.Store
	planner *dispatch.Planner
	disp    *dispatch.Dispatcher
	ch      channels.Channel
}

func newRig(tb testing.TB, n int, ch channels.Channel, limits dispatch.Limits, retry dispatch.RetryPolicy) *rig {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(tb.TempDir(), "crier.db"))
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
	disp := dispatch.New(st, dispatch.Options{Retry: retry, Poll: 5 * time.Millisecond})
	disp.AddChannel(ch, limits)
	planner := dispatch.NewPlanner(dispatch.PlannerOptions{Templates: tmpl, Channels: map[string]channels.Kind{ch.Name(): ch.Kind()},
		Audiences: []dispatch.Audience{{Name: "all", Selector: subscribers.Selector{Roles: []string{"staff"}}}}, Retry: retry,
		OnCommit: disp.Notify})
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

// peakHeap samples the heap in use until stop is closed.
func peakHeap(stop <-chan struct{}) *atomic.Uint64 {
	var peak atomic.Uint64
	go func() {
		var ms runtime.MemStats
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return &peak
}
