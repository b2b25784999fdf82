package loadtest

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/email"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
)

// steppedClock is a clock a test moves forward; safe for concurrent use.
type steppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *steppedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestBroadcast_SMTPOutage10Minutes: the mail relay refuses every message
// (421, service not available) for ten minutes of the dispatcher's clock in
// the middle of a broadcast, with the default retry policy. The channel
// pauses instead of spending everyone's attempts: when the relay is back,
// every message goes out, none expired and none lost.
func TestBroadcast_SMTPOutage10Minutes(t *testing.T) {
	const n = 200
	var down atomic.Bool
	peer := channeltest.NewSMTPPeer(t, channeltest.SMTPHook(func(stage channeltest.SMTPStage, _ string) error {
		if stage == channeltest.SMTPStageMail && down.Load() {
			return channeltest.SMTPReply(421, "4.3.2", "Service not available, closing transmission channel")
		}
		return nil
	}))
	sender, err := email.New("email", email.Config{Host: peer.Host, Port: peer.Port, TLS: email.TLSNone, From: "briefings@example.org",
		Timeout: 2 * time.Second, PoolSize: 4}, email.WithInstallation("outage-test"))
	if err != nil {
		t.Fatal(err)
	}
	clk := &steppedClock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	r := newRigAt(t, n, sender, dispatch.Limits{Concurrency: 4}, dispatch.RetryPolicy{}, clk.Now) // the defaults
	down.Store(true)
	out := r.send(t, "outage")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.disp.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// Ten minutes of the dispatcher's clock pass while the relay is down.
	start := clk.Now()
	for clk.Now().Sub(start) < 10*time.Minute {
		time.Sleep(10 * time.Millisecond)
		clk.Add(3 * time.Second)
	}
	if got := peer.Count(); got != 0 {
		t.Fatalf("the relay accepted %d messages while down", got)
	}
	down.Store(false)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := r.st.Counts(ctx, []int64{out.TriggerID})
		if err != nil {
			t.Fatal(err)
		}
		if c["sent"] == n {
			break
		}
		if c["expired"] > 0 || c["failed"] > 0 || time.Now().After(deadline) {
			t.Fatalf("after the outage: %v, want all %d sent", c, n)
		}
		time.Sleep(10 * time.Millisecond)
		clk.Add(time.Second)
	}
	got := map[string]int{}
	for _, m := range peer.Messages() {
		for _, to := range m.To {
			got[to]++
		}
	}
	if len(got) != n {
		t.Errorf("%d people got the message, want %d", len(got), n)
	}
	attempts := 0
	for _, a := range attemptsOf(t, r, out.TriggerID) {
		attempts = max(attempts, a)
	}
	if attempts > 5 {
		t.Errorf("a delivery spent %d attempts on the outage, want the channel paused instead", attempts)
	}
}

// TestBroadcast_Twilio429PausesTheLane: Twilio answers a stretch of
// requests 429 with Retry-After: 1. The lane pauses for the Retry-After:
// the peer sees no request from crier inside it (beyond those already on
// their way), every number gets exactly one message and no attempt is
// spent on the throttling.
func TestBroadcast_Twilio429PausesTheLane(t *testing.T) {
	const n, storm = 120, 7
	var mu sync.Mutex
	var throttled []time.Time // when the peer answered 429
	peer := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(k int, _ url.Values) *channeltest.TwilioResponse {
		if k < 20 || k >= 20+storm {
			return nil
		}
		mu.Lock()
		throttled = append(throttled, time.Now())
		mu.Unlock()
		resp := channeltest.TwilioError(http.StatusTooManyRequests, 20429, "Too Many Requests")
		resp.Header = http.Header{"Retry-After": {"1"}}
		return resp
	}))
	retry := dispatch.RetryPolicy{OutagePause: 10 * time.Millisecond, OutagePauseMax: 100 * time.Millisecond}
	r := newRig(t, n, twilioSender(t, peer), dispatch.Limits{Concurrency: 4, InDoubt: dispatch.InDoubtHold}, retry)
	out := r.send(t, "storm")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.disp.Drain(ctx, []int64{out.TriggerID}, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	if c := r.counts(t); c["sent"] != n {
		t.Fatalf("statuses %v, want all %d sent", c, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(throttled) != storm {
		t.Fatalf("the peer answered %d requests 429, want the %d scripted (the lane kept sending into it?)", len(throttled), storm)
	}
	// A request already on its way when the 429 was answered may arrive
	// just after it; anything later inside the Retry-After ignored it.
	const onTheWay = 100 * time.Millisecond
	for _, at := range throttled {
		for _, req := range peer.Sends() {
			if req.Time.After(at.Add(onTheWay)) && req.Time.Before(at.Add(time.Second)) {
				t.Errorf("request %d arrived %v after a 429 with Retry-After: 1", req.N, req.Time.Sub(at))
			}
		}
	}
	perNumber := map[string]int{}
	for _, m := range peer.Messages() {
		perNumber[m.To]++
	}
	for to, k := range perNumber {
		if k != 1 {
			t.Errorf("%s got %d messages, want 1", to, k)
		}
	}
	for id, a := range attemptsOf(t, r, out.TriggerID) {
		if a != 1 {
			t.Errorf("delivery %d spent %d attempts, want 1: throttling is the channel's, not the recipient's", id, a)
		}
	}
}

// attemptsOf maps each delivery of the trigger to its attempts.
func attemptsOf(t *testing.T, r *rig, triggerID int64) map[int64]int {
	t.Helper()
	out := map[int64]int{}
	err := r.st.Log(context.Background(), store.LogFilter{TriggerIDs: []int64{triggerID}}, func(e *store.LogEntry) error {
		out[e.ID] = e.Attempts
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBroadcast_TwilioSlowerThanTimeout: Twilio takes longer to answer
// than crier waits, so every request times out after Twilio has created
// the message. crier holds each as unknown (in_doubt: hold), never sends
// it again blindly, and reconciliation finds every one in Twilio's
// message list: every delivery ends sent with the SID of the one message
// its number got.
func TestBroadcast_TwilioSlowerThanTimeout(t *testing.T) {
	const n = 20
	peer := channeltest.NewTwilioPeer(t, channeltest.WithTwilioLatency(1500*time.Millisecond))
	sender, err := twilioSenderTimeout(peer, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	retry := dispatch.RetryPolicy{OutagePause: 50 * time.Millisecond, OutagePauseMax: 200 * time.Millisecond, ReconcileAfter: 4 * time.Second}
	r := newRig(t, n, sender, dispatch.Limits{Concurrency: 4}, retry) // SMS default: in_doubt hold
	out := r.send(t, "slow")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.disp.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := r.st.Counts(ctx, []int64{out.TriggerID})
		if err != nil {
			t.Fatal(err)
		}
		if c["sent"] == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %v, want all %d sent", c, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sids := map[string][]string{}
	for _, m := range peer.Messages() {
		sids[m.To] = append(sids[m.To], m.SID)
	}
	if len(sids) != n {
		t.Errorf("%d numbers got a message, want %d", len(sids), n)
	}
	reconciled := 0
	err = r.st.Log(ctx, store.LogFilter{TriggerIDs: []int64{out.TriggerID}}, func(e *store.LogEntry) error {
		if got := sids[e.Address]; len(got) != 1 || got[0] != e.ProviderID {
			t.Errorf("%s: recorded %q, the peer created %v", e.Address, e.ProviderID, got)
		}
		if e.Reason == "reconciled" {
			reconciled++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reconciled != n {
		t.Errorf("%d deliveries settled by reconciliation, want all %d (every request timed out)", reconciled, n)
	}
}
