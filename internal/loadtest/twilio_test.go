package loadtest

import (
	"context"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/twilio"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
)

func twilioSender(tb testing.TB, peer *channeltest.TwilioPeer) *twilio.Sender {
	tb.Helper()
	s, err := twilio.New("sms", twilio.Config{AccountSID: peer.AccountSID, AuthToken: fields.Secret(peer.AuthToken),
		MessagingServiceSID: peer.MessagingServiceSID, APIBaseURL: peer.URL, Timeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// BenchmarkBroadcast_Twilio5000 sends a 5,000-recipient SMS broadcast
// through the Twilio channel to a peer that takes 20 ms per request, at
// concurrency 16: the rate should approach 16 / 20 ms = 800 messages/s.
func BenchmarkBroadcast_Twilio5000(b *testing.B) {
	const n, concurrency = 5000, 16
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		peer := channeltest.NewTwilioPeer(b, channeltest.WithTwilioLatency(20*time.Millisecond))
		r := newRig(b, n, twilioSender(b, peer), dispatch.Limits{Concurrency: concurrency}, dispatch.RetryPolicy{})
		out := r.send(b, "bench")
		b.StartTimer()
		start := time.Now()
		if err := r.disp.Drain(context.Background(), []int64{out.TriggerID}, time.Time{}, nil); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if c := r.counts(b); c["sent"] != n || peer.Count() != n {
			b.Fatalf("sent %d, peer got %d, want %d", c["sent"], peer.Count(), n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(concurrency)/0.020, "ideal_msgs/s")
	}
}

// TestBroadcast_TwilioOutageThenRecovery: the peer fails every request
// for its first stretch (503 JSON, an HTML 503 from a proxy, 429 with
// Retry-After, a dropped connection), then recovers. Every delivery ends
// sent, each number got exactly one message, and nothing was lost.
// TestBroadcast_TwilioOutageThenRecovery_Hold is the same outage under the
// SMS default policy.
func TestBroadcast_TwilioOutageThenRecovery(t *testing.T) {
	const n = 300
	var failing atomic.Bool
	failing.Store(true)
	peer := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(k int, _ url.Values) *channeltest.TwilioResponse {
		if !failing.Load() {
			return nil
		}
		if k >= 400 {
			failing.Store(false) // the provider recovers
			return nil
		}
		switch k % 4 {
		case 0:
			return channeltest.TwilioError(503, 20500, "Service unavailable")
		case 1:
			return &channeltest.TwilioResponse{Status: 503, Body: "<html><body>503 Service Temporarily Unavailable</body></html>", ContentType: "text/html"}
		case 2:
			r := channeltest.TwilioError(429, 20429, "Too many requests")
			r.Header = map[string][]string{"Retry-After": {"0"}}
			return r
		default:
			return &channeltest.TwilioResponse{Drop: true}
		}
	}))
	retry := dispatch.RetryPolicy{MaxAttempts: 20, InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Deadline: time.Hour,
		OutagePause: time.Millisecond, OutagePauseMax: 20 * time.Millisecond}
	// resend: a dropped connection is in doubt, and this peer drops before
	// creating anything, so a resend is what gets each number its message.
	// (With hold, the SMS default, those deliveries would wait as unknown
	// for an operator: see TestLog_Twilio_Classification.)
	r := newRig(t, n, twilioSender(t, peer), dispatch.Limits{Concurrency: 8, InDoubt: dispatch.InDoubtResend}, retry)
	out := r.send(t, "outage")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.disp.Drain(ctx, []int64{out.TriggerID}, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	if c := r.counts(t); c["sent"] != n {
		t.Fatalf("statuses %v, want all %d sent", c, n)
	}
	perNumber := map[string]int{}
	for _, req := range peer.Requests() {
		if req.Status == 201 {
			perNumber[req.To]++
		}
	}
	if len(perNumber) != n {
		t.Fatalf("%d numbers got a message, want %d", len(perNumber), n)
	}
	for to, k := range perNumber {
		if k != 1 {
			t.Errorf("%s got %d messages, want exactly 1", to, k)
		}
	}
	if failing.Load() {
		t.Fatal("the peer never recovered: the test did not exercise the outage")
	}
}

func twilioSenderTimeout(peer *channeltest.TwilioPeer, timeout time.Duration) (*twilio.Sender, error) {
	return twilio.New("sms", twilio.Config{AccountSID: peer.AccountSID, AuthToken: fields.Secret(peer.AuthToken),
		MessagingServiceSID: peer.MessagingServiceSID, APIBaseURL: peer.URL, Timeout: timeout})
}

// TestBroadcast_TwilioOutageThenRecovery_Hold: the same outage with the
// SMS default in_doubt: hold. Answered failures (503, 429) are retried
// and sent once; deliveries whose connection dropped after the request
// went out are held as unknown, never resent; nothing is lost, and no
// number gets two messages.
func TestBroadcast_TwilioOutageThenRecovery_Hold(t *testing.T) {
	const n = 120
	var failing atomic.Bool
	failing.Store(true)
	peer := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(k int, _ url.Values) *channeltest.TwilioResponse {
		if !failing.Load() {
			return nil
		}
		if k >= 160 {
			failing.Store(false)
			return nil
		}
		if k%4 == 3 {
			return &channeltest.TwilioResponse{Drop: true}
		}
		return channeltest.TwilioError(503, 20500, "Service unavailable")
	}))
	retry := dispatch.RetryPolicy{MaxAttempts: 20, InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Deadline: time.Hour,
		OutagePause: time.Millisecond, OutagePauseMax: 20 * time.Millisecond}
	r := newRig(t, n, twilioSender(t, peer), dispatch.Limits{Concurrency: 8}, retry)
	out := r.send(t, "outage-hold")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.disp.Drain(ctx, []int64{out.TriggerID}, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	c := r.counts(t)
	if c["sent"]+c["unknown"] != n || c["unknown"] == 0 {
		t.Fatalf("statuses %v, want every delivery sent or held as unknown (some dropped)", c)
	}
	got := map[string]int{}
	for _, req := range peer.Requests() {
		if req.Status == 201 {
			got[req.To]++
		}
	}
	for to, k := range got {
		if k != 1 {
			t.Errorf("%s got %d messages, want at most 1", to, k)
		}
	}
	if len(got) != c["sent"] {
		t.Fatalf("%d numbers got a message, %d deliveries sent", len(got), c["sent"])
	}
}
