package dispatch

import (
	"strings"
	"testing"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/templates"
)

// TestDispatcher_SMSRate_CountsSegments: an SMS lane's rate limit is spent
// per segment, not per message: three 3-segment messages use 9 of the
// bucket's tokens.
func TestDispatcher_SMSRate_CountsSegments(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("a"), person("b"), person("c"))
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	req := message("send:long", "everyone", "sms")
	req.Body = strings.Repeat("Use paper prescriptions until further notice. ", 8) // ~370 GSM-7 characters: 3 segments
	out := plan(t, p, st, req)
	sms := newTestChannel("sms", channels.KindSMS, nil)
	d := New(st, Options{Now: clk.Now, Rand: fixedRand(0), Poll: 5e6})
	d.AddChannel(sms, Limits{Concurrency: 1, Rate: 0.001, Burst: 10}) // a bucket of 10 that refills once in ~17 minutes
	drain(t, d, clk, out.TriggerID)
	if n := len(sms.messages()); n != 3 {
		t.Fatalf("sent %d messages, want 3", n)
	}
	for _, m := range sms.messages() {
		if _, seg := templates.SMSSegments(m.Text); seg != 3 {
			t.Fatalf("message has %d segments, want 3 (the test needs multi-segment messages): %q", seg, m.Text)
		}
	}
	if left := d.lanes["sms"].limiter.Tokens(); left > 1.5 || left < 0.5 {
		t.Fatalf("tokens left = %.2f, want about 1 (10 − 3 × 3 segments)", left)
	}
}
