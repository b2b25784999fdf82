package dispatch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

func TestDispatcher_Recover_AfterCrash(t *testing.T) {
	clk := newClock(t0)
	st, path := openStore(t, clk)
	var people []subscribers.Subscriber
	for i := range 6 {
		people = append(people, person(fmt.Sprintf("p%d", i), func(s *subscribers.Subscriber) { s.Phone = fmt.Sprintf("+4474000000%02d", i) }))
	}
	addSubscribers(t, st, people...)
	out := plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, message("send:crash", "everyone", "sms", "email"))
	sms := newTestChannel("sms", channels.KindSMS, nil)       // in_doubt: hold (the sms default)
	email := newTestChannel("email", channels.KindEmail, nil) // in_doubt: resend (the email default)

	// The first process claims three deliveries per channel, hands two
	// of them to the provider, and dies before recording anything. Its
	// heartbeat was not renewed; the third was never attempted.
	inDoubt := map[string]string{} // key → channel
	ctx := context.Background()
	if err := st.NodeHeartbeat(ctx, "first", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []*testChannel{sms, email} {
		claimed, err := st.Claim(ctx, store.ClaimOptions{Channel: ch.name, Limit: 2, Lease: 5 * time.Minute, Holder: "first", Send: true})
		if err != nil || len(claimed) != 2 {
			t.Fatalf("Claim %s: %d rows, %v", ch.name, len(claimed), err)
		}
		if ahead, err := st.Claim(ctx, store.ClaimOptions{Channel: ch.name, Limit: 1, Lease: 5 * time.Minute, Holder: "first"}); err != nil || len(ahead) != 1 {
			t.Fatalf("Claim ahead %s: %d rows, %v", ch.name, len(ahead), err)
		}
		for _, c := range claimed {
			inDoubt[c.Key] = ch.name
			if _, err := ch.Send(ctx, channels.Message{DeliveryID: c.ID, Key: c.Key, Address: c.Address, Text: c.Text}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// The restart comes after the first process's heartbeat has run out,
	// long before its claims' lease would.
	clk.Add(11 * time.Second)
	st = openAt(t, path, clk)
	d := newDispatcher(st, clk, RetryPolicy{}, sms, email)
	if err := d.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows := logRows(t, st, "")
	for k, r := range rows {
		key := "send:crash/" + k
		want := "queued/"
		switch inDoubt[key] {
		case "sms":
			want = "unknown/in_doubt"
		case "email":
			want = "queued/in_doubt"
		}
		if got := r.Status + "/" + r.Reason; got != want {
			t.Errorf("after Recover %s = %s, want %s", k, got, want)
		}
		if inDoubt[key] == "" && r.Attempts != 0 {
			t.Errorf("after Recover %s has %d attempts, want none: it was never sent", k, r.Attempts)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Drain(ctx, []int64{out.TriggerID}, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Recover(context.Background()); err != nil { // a second start finds nothing to do
		t.Fatal(err)
	}
	if c := counts(t, st); c[store.StatusSent] != 10 || c[store.StatusUnknown] != 2 || len(c) != 2 {
		t.Errorf("counts after Drain = %v, want 10 sent and 2 unknown", c)
	}
	// Every delivery reached its provider exactly once, except the email
	// ones in doubt, which the resend policy sends again on purpose.
	for _, ch := range []*testChannel{sms, email} {
		got := ch.sent()
		if len(got) != 6 {
			t.Errorf("%s: %d distinct keys sent, want 6", ch.name, len(got))
		}
		for key, n := range got {
			want := 1
			if inDoubt[key] == "email" {
				want = 2
			}
			if n != want {
				t.Errorf("%s: %s sent %d times, want %d", ch.name, key, n, want)
			}
		}
	}
}

func TestDispatcher_Drain_ExactlyOnce(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	var people []subscribers.Subscriber
	for i := range 300 {
		people = append(people, person(fmt.Sprintf("p%03d", i)))
	}
	addSubscribers(t, st, people...)
	out := plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, message("send:many", "everyone", "sms", "email"))
	sms := newTestChannel("sms", channels.KindSMS, nil)
	email := newTestChannel("email", channels.KindEmail, nil)
	d := New(st, Options{Now: clk.Now, Poll: 5 * time.Millisecond})
	d.AddChannel(sms, Limits{Concurrency: 8})
	d.AddChannel(email, Limits{Concurrency: 3, Rate: 1000, Burst: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last map[string]int
	if err := d.Drain(ctx, []int64{out.TriggerID}, time.Time{}, func(c map[string]int) { last = c }); err != nil {
		t.Fatal(err)
	}
	if last[store.StatusSent] != 600 || len(last) != 1 {
		t.Errorf("final progress = %v, want 600 sent", last)
	}
	for _, ch := range []*testChannel{sms, email} {
		got := ch.sent()
		if len(got) != 300 {
			t.Errorf("%s: %d keys sent, want 300", ch.name, len(got))
		}
		for k, n := range got {
			if n != 1 {
				t.Errorf("%s: %s sent %d times", ch.name, k, n)
			}
		}
	}
}

// blockingChannel is a channel whose sends wait for release (or for
// their context); started hears about each send as it begins.
type blockingChannel struct {
	*testChannel
	started chan string
	release chan struct{}
	// untilCancelled makes Send wait for its context instead of release.
	untilCancelled bool
}

func newBlockingChannel(untilCancelled bool) *blockingChannel {
	return &blockingChannel{testChannel: newTestChannel("sms", channels.KindSMS, nil), started: make(chan string, 100), release: make(chan struct{}), untilCancelled: untilCancelled}
}

func (c *blockingChannel) Send(ctx context.Context, m channels.Message) (channels.Receipt, error) {
	if _, err := c.testChannel.Send(ctx, m); err != nil {
		return channels.Receipt{}, err
	}
	c.started <- m.Key
	if c.untilCancelled {
		<-ctx.Done()
		return channels.Receipt{}, channels.Temporary(channels.ReasonTimeout, "", 0, ctx.Err())
	}
	<-c.release
	if err := ctx.Err(); err != nil {
		return channels.Receipt{}, fmt.Errorf("the send's context was cancelled: %w", err)
	}
	return channels.Receipt{ProviderID: "SM-" + m.Key, Status: "queued"}, nil
}

func TestDispatcher_Run_Stop(t *testing.T) {
	tests := []struct {
		name string
		// untilCancelled sends never finish by themselves: Grace ends them.
		untilCancelled bool
		concurrency    int
		grace          time.Duration
		// inFlight rows end as inFlightStatus with the attempt counted.
		inFlightStatus string
	}{
		{"in-flight sends finish and are recorded", false, 2, 0, store.StatusSent},
		{"sends outliving the grace period are cancelled", true, 1, 50 * time.Millisecond, store.StatusQueued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			var people []subscribers.Subscriber
			for i := range 10 {
				people = append(people, person(fmt.Sprintf("p%d", i)))
			}
			addSubscribers(t, st, people...)
			plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, message("send:stop", "everyone", "sms"))
			ch := newBlockingChannel(tt.untilCancelled)
			d := New(st, Options{Now: clk.Now, Poll: 5 * time.Millisecond, Grace: tt.grace})
			d.AddChannel(ch, Limits{Concurrency: tt.concurrency})

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			inFlight := map[string]bool{}
			for range tt.concurrency {
				inFlight[<-ch.started] = true
			}
			cancel()
			close(ch.release)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after its context was cancelled")
			}

			if c := counts(t, st); c[store.StatusSending] != 0 {
				t.Errorf("rows left in sending after a stop: %v", c)
			}
			if n := len(ch.messages()); n != tt.concurrency {
				t.Errorf("%d sends, want only the %d in flight at the stop", n, tt.concurrency)
			}
			for k, r := range logRows(t, st, "") {
				if inFlight["send:stop/"+k] {
					if r.Status != tt.inFlightStatus || r.Attempts != 1 {
						t.Errorf("in-flight %s = %s after %d attempts, want %s after 1", k, r.Status, r.Attempts, tt.inFlightStatus)
					}
					continue
				}
				if r.Status != store.StatusQueued || r.Attempts != 0 || !r.NextAttempt.Equal(clk.Now()) {
					t.Errorf("unsent %s = %s after %d attempts, next %v; want queued, 0 attempts, due now", k, r.Status, r.Attempts, r.NextAttempt)
				}
			}
		})
	}
}
