package dispatch

import (
	"context"
	"math"
	"sync"
	"time"
)

// window holds a channel's rate as people read it: at most rate sends
// (SMS: segments) in any second, whenever the second starts. The token
// bucket beside it (golang.org/x/time/rate) spreads sends and allows the
// configured burst, but alone it lets a second that follows an idle one
// carry the burst and the rate together; the window closes that gap.
// For rates under one a second the window is the time one send takes
// (rate 0.5: one send in any two seconds). A burst configured above the
// rate widens the window to it: the operator asked for bursts.
type window struct {
	span time.Duration // the window's length
	size int           // units allowed in any span

	mu   sync.Mutex
	sent []time.Time // when each unit of the last max units went, oldest first
}

// windowGuard is added to the window: how far apart a request's turn
// and its arrival may drift.
const windowGuard = 25 * time.Millisecond

// newWindow is the window of rate units a second. Like the token bucket it
// runs on the real clock: a pace is real time whatever the dispatcher's
// clock says.
func newWindow(rate float64, burst int) *window {
	span := time.Second
	if rate < 1 {
		span = time.Duration(float64(time.Second) / rate)
	}
	// A little more than the span: a request leaves a moment after its
	// turn, and not always the same moment, and the provider counts
	// arrivals.
	span += windowGuard
	size := int(math.Floor(rate*(span-windowGuard).Seconds() + 1e-9))
	return &window{span: span, size: max(1, size, burst)}
}

// WaitN waits until n more units fit in the window, then counts them as
// sent now. n above the window's size waits for an empty window.
func (w *window) WaitN(ctx context.Context, n int) error {
	n = min(n, w.size)
	for {
		w.mu.Lock()
		now := time.Now()
		for len(w.sent) > 0 && !w.sent[0].After(now.Add(-w.span)) {
			w.sent = w.sent[1:]
		}
		if len(w.sent)+n <= w.size {
			for range n {
				w.sent = append(w.sent, now)
			}
			w.mu.Unlock()
			return nil
		}
		// Wait until enough of the oldest leave the window.
		until := w.sent[len(w.sent)+n-w.size-1].Add(w.span)
		w.mu.Unlock()
		t := time.NewTimer(until.Sub(now) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
