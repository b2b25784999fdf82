package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
)

// TestDispatcher_Run_RecoversLeasesThatRunOutLater: a crashed process's
// claims whose lease is still running when crier restarts are not lost:
// the running dispatcher recovers them once the lease runs out.
func TestDispatcher_Run_RecoversLeasesThatRunOutLater(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"), person("bob"))
	plan(t, newPlanner(clk, loadTemplates(t, nil), RetryPolicy{}), st, message("send:quick-restart", "everyone", "email"))
	// The previous process claimed both (lease 5m) and died.
	if c, err := st.Claim(context.Background(), store.ClaimOptions{Channel: "email", Limit: 2, Lease: 5 * time.Minute}); err != nil || len(c) != 2 {
		t.Fatalf("Claim: %d, %v", len(c), err)
	}
	email := newTestChannel("email", channels.KindEmail, nil)
	d := New(st, Options{Now: clk.Now, Rand: fixedRand(0), Poll: 5 * time.Millisecond, Lease: 2 * time.Second})
	d.AddChannel(email, Limits{Concurrency: 1})
	// Restarted 10 seconds later: start-up recovery finds the leases valid.
	clk.Add(10 * time.Second)
	if err := d.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// The lease runs out while crier keeps running.
	clk.Add(5 * time.Minute)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := counts(t, st)
		if c[store.StatusSent] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %v: the rows left in sending were never recovered", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := email.sent(); len(got) != 2 {
		t.Fatalf("sends %v, want each of the 2 deliveries once", got)
	}
}
