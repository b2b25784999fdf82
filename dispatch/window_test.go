package dispatch

import (
	"context"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// A lane's pace never lets a second carry more than the rate, even the
// second after an idle spell, when the token bucket is full: the bucket
// alone would let 20 + 20 through in the first second.
func TestLane_Pace_NoSecondAboveTheRate(t *testing.T) {
	ln := &lane{limiter: rate.NewLimiter(20, 20), window: newWindow(20, 0)}
	ctx := context.Background()
	start := time.Now()
	var at []time.Duration
	for range 50 {
		if err := ln.pace(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := ln.admit(ctx, 1); err != nil {
			t.Fatal(err)
		}
		at = append(at, time.Since(start))
	}
	for i := range at {
		n := 0
		for _, b := range at[i:] {
			if b-at[i] < time.Second {
				n++
			}
		}
		if n > 20 {
			t.Fatalf("%d sends in the second from %v, want at most 20", n, at[i])
		}
	}
	// 50 sends at 20 a second: the first 20 at once, then a window at a
	// time; not slower than that either.
	if got := at[len(at)-1]; got > 2300*time.Millisecond {
		t.Errorf("50 sends took %v, want about 2s", got)
	}
}

func TestWindow_SlowRates(t *testing.T) {
	for _, c := range []struct {
		rate float64
		span time.Duration
		size int
	}{{20, time.Second + windowGuard, 20}, {2.5, time.Second + windowGuard, 2}, {0.5, 2*time.Second + windowGuard, 1}, {0.001, 1000*time.Second + windowGuard, 1}} {
		// (a burst configured above the rate widens the window: see TestDispatcher_SMSRate_CountsSegments)
		w := newWindow(c.rate, 0)
		if w.span != c.span || w.size != c.size {
			t.Errorf("rate %v: span %v size %d, want %v and %d", c.rate, w.span, w.size, c.span, c.size)
		}
	}
}
