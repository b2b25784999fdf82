package dispatch

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// The planner tells its Observer about every delivery it writes as
// suppressed, once the plan's transaction has committed (metrics must not
// count rows a rollback threw away).
func TestPlanner_PlanTx_ObserverHearsSuppressedAfterCommit(t *testing.T) {
	for _, c := range []struct {
		name     string
		rollback bool
		want     []string
	}{
		{"committed", false, []string{"slack/slack/suppressed/no_address", "sms/sms/suppressed/opted_out"}},
		{"rolled back", true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := openStore(t, clk)
			addSubscribers(t, st,
				person("ann"),
				person("bob", func(s *subscribers.Subscriber) { s.OptedOut = []string{"sms"}; s.Phone = "+447400000002" }),
				person("cat", func(s *subscribers.Subscriber) { s.Slack = ""; s.Phone = "+447400000003" }))
			obs := &observer{}
			p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now, Observer: obs})
			errRollback := errors.New("scripted rollback")
			var out Outcome
			err := st.Write(context.Background(), func(tx *store.Tx) error {
				var err error
				if out, err = p.PlanTx(tx, message("send:obs", "everyone", "sms", "slack")); err != nil {
					return err
				}
				obs.mu.Lock()
				early := len(obs.seen)
				obs.mu.Unlock()
				if early != 0 {
					t.Errorf("the observer heard %d suppressions before the commit", early)
				}
				if c.rollback {
					return errRollback
				}
				return nil
			})
			if c.rollback != errors.Is(err, errRollback) || (!c.rollback && err != nil) {
				t.Fatalf("Write: %v", err)
			}
			obs.mu.Lock()
			got := slices.Sorted(slices.Values(obs.seen))
			obs.mu.Unlock()
			if !slices.Equal(got, c.want) {
				t.Errorf("observed %q, want %q", got, c.want)
			}
			if !c.rollback && out.Suppressed != len(got) {
				t.Errorf("Outcome.Suppressed = %d, observer heard %d", out.Suppressed, len(got))
			}
		})
	}
}

// Running is what /readyz reads: true only while Run is going.
func TestDispatcher_Run_Running(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	d := newDispatcher(st, clk, RetryPolicy{}, newTestChannel("sms", channels.KindSMS, nil))
	if d.Running() {
		t.Fatal("Running before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !d.Running() {
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("Running still false 10s after Run started")
		}
		time.Sleep(time.Millisecond) // polling interval, not an assertion
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d.Running() {
		t.Error("Running after Run returned")
	}
}
