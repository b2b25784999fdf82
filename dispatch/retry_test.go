package dispatch

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

func TestRetryPolicy_Backoff(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 10 * time.Second, MaxBackoff: 10 * time.Minute}
	p.Defaults()
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		rnd        int64 // fixedRand value: 0 = bottom of the jitter, -1 = top
		want       time.Duration
	}{
		{"first failure, least jitter", 1, 0, 0, 5 * time.Second},
		{"first failure, most jitter", 1, 0, -1, 10 * time.Second},
		{"second failure doubles", 2, 0, 0, 10 * time.Second},
		{"second failure, most jitter", 2, 0, -1, 20 * time.Second},
		{"fifth failure", 5, 0, -1, 160 * time.Second},
		{"capped at max_backoff", 7, 0, -1, 10 * time.Minute},
		{"capped, least jitter", 7, 0, 0, 5 * time.Minute},
		{"far past the cap does not overflow", 1000, 0, -1, 10 * time.Minute},
		{"attempt 0 counts as the first", 0, 0, 0, 5 * time.Second},
		{"retry-after longer than the backoff wins", 1, 3 * time.Minute, -1, 3 * time.Minute},
		{"retry-after beyond the cap still wins", 9, time.Hour, -1, time.Hour},
		{"retry-after shorter than the backoff is not a shortcut", 3, time.Second, 0, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Backoff(tt.attempt, tt.retryAfter, fixedRand(tt.rnd)); got != tt.want {
				t.Errorf("Backoff(%d, %v) = %v, want %v", tt.attempt, tt.retryAfter, got, tt.want)
			}
		})
	}
}

// Equal jitter keeps every wait between half and all of the exponential
// step, whatever the random source says.
func TestRetryPolicy_Backoff_JitterBounds(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 3 * time.Second, MaxBackoff: 2 * time.Minute}
	p.Defaults()
	r := rand.New(rand.NewPCG(1, 2))
	var asked []int64
	rnd := func(n int64) int64 {
		asked = append(asked, n)
		return r.Int64N(n)
	}
	step := p.InitialBackoff
	for attempt := 1; attempt <= 12; attempt++ {
		for range 50 {
			got := p.Backoff(attempt, 0, rnd)
			if got < step/2 || got > step {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, got, step/2, step)
			}
		}
		if n := asked[len(asked)-1]; n != int64(step/2)+1 {
			t.Fatalf("attempt %d: asked the random source for [0,%d), want [0,%d)", attempt, n, int64(step/2)+1)
		}
		step = min(step*2, p.MaxBackoff)
	}
	// The default source is used when none is given.
	if got := p.Backoff(1, 0, nil); got < 1500*time.Millisecond || got > 3*time.Second {
		t.Errorf("Backoff with the default source = %v", got)
	}
}

func TestRetryPolicy_Validate(t *testing.T) {
	tests := []struct {
		name string
		p    RetryPolicy
		want []string // keys reported
	}{
		{"defaults are valid", RetryPolicy{}, nil},
		{"everything wrong", RetryPolicy{MaxAttempts: 101, InitialBackoff: time.Minute, MaxBackoff: time.Second, Deadline: time.Second, ChannelPause: time.Millisecond},
			[]string{"max_attempts", "max_backoff", "deadline", "channel_pause"}},
		{"negative backoff", RetryPolicy{InitialBackoff: -time.Second}, []string{"initial_backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Defaults()
			l := tt.p.Validate()
			if len(l) != len(tt.want) {
				t.Fatalf("Validate = %v, want problems with %v", l, tt.want)
			}
			for _, k := range tt.want {
				if !strings.Contains(l.Error(), k) {
					t.Errorf("Validate = %v, want a problem with %s", l, k)
				}
			}
		})
	}
}

// A scheduled briefing's deliveries may go out until the next briefing is
// due, however long that is (an outage within its window costs nobody
// their report), and never after it; anything else has retry.deadline.
func TestPlanner_Deadline_BriefingWindow(t *testing.T) {
	for _, c := range []struct {
		name string
		kind string
		next time.Duration
		want time.Duration
	}{
		{"briefing, next one in 9h", "briefing", 9 * time.Hour, 9 * time.Hour},
		{"briefing, next one in 1h", "briefing", time.Hour, time.Hour},
		{"briefing without a schedule", "briefing", 0, 6 * time.Hour},
		{"broadcast", "send", 9 * time.Hour, 6 * time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			addSubscribers(t, st, person("ann"))
			req := message("k:"+c.kind, "everyone", "sms")
			req.Kind = c.kind
			if c.next > 0 {
				req.NextBriefing = t0.Add(c.next)
			}
			plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, req)
			cs, err := st.Claim(context.Background(), store.ClaimOptions{Channel: "sms", Limit: 10, Lease: time.Minute})
			if err != nil || len(cs) != 1 {
				t.Fatalf("Claim: %d, %v", len(cs), err)
			}
			if got := cs[0].Deadline.Sub(t0); got != c.want {
				t.Errorf("deadline +%v, want +%v", got, c.want)
			}
		})
	}
}
