package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

func TestStore_QueueStats_DueAndDeferred(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	ctx := context.Background()

	if got, err := st.QueueStats(ctx); err != nil || len(got) != 0 {
		t.Fatalf("QueueStats on an empty store: %v %v, want nothing", got, err)
	}
	queued := func(sub, ch string, next time.Time) store.NewDelivery {
		return store.NewDelivery{SubscriberID: sub, Channel: ch, Kind: "sms", Address: "+447400000000", Status: store.StatusQueued, Text: "x", NextAt: next}
	}
	enqueue(t, st, "first",
		queued("a", "sms", time.Time{}),              // due at planning (t0)
		queued("b", "sms", t0.Add(time.Hour)),        // quiet hours: not due yet
		queued("c", "email", t0.Add(30*time.Second)), // due 30s later
		store.NewDelivery{SubscriberID: "d", Channel: "sms", Kind: "sms", Status: store.StatusSuppressed, Reason: "opted_out"})
	clk.Add(time.Minute)
	enqueue(t, st, "second", queued("e", "sms", time.Time{})) // due at t0+1m
	clk.Add(time.Minute)                                      // now t0+2m

	got, err := st.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.QueueStat{
		{Channel: "email", Queued: 1, Due: 1, OldestDue: t0.Add(30 * time.Second)},
		{Channel: "sms", Queued: 3, Due: 2, OldestDue: t0},
	}
	if len(got) != len(want) {
		t.Fatalf("QueueStats = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Channel != want[i].Channel || got[i].Queued != want[i].Queued || got[i].Due != want[i].Due || !got[i].OldestDue.Equal(want[i].OldestDue) {
			t.Errorf("QueueStats[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	// Claimed rows are being sent, not waiting: they leave the queue.
	if c := claim(t, st, store.ClaimOptions{Channel: "email"}); len(c) != 1 {
		t.Fatalf("claimed %d email deliveries, want 1", len(c))
	}
	got, err = st.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Channel != "sms" {
		t.Errorf("after claiming email's only row: %+v, want sms alone", got)
	}
}

func TestStore_ScheduleLags_LatestRunPerSchedule(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	ctx := context.Background()
	day1 := time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC)
	for _, r := range []store.ScheduleRun{
		{Schedule: "morning", DueAt: day1, FiredAt: day1.Add(30 * time.Second)},
		{Schedule: "morning", DueAt: day1.Add(24 * time.Hour), FiredAt: day1.Add(24*time.Hour + 2*time.Minute), Late: true},
		{Schedule: "evening", DueAt: day1.Add(9 * time.Hour), FiredAt: day1.Add(9 * time.Hour)},
	} {
		if _, err := st.RecordRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.ScheduleLags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"evening": 0, "morning": 2 * time.Minute}
	if len(got) != len(want) {
		t.Fatalf("ScheduleLags = %+v, want one per schedule %v", got, want)
	}
	for _, l := range got {
		if l.Lag() != want[l.Schedule] {
			t.Errorf("lag of %s = %v, want %v (latest run only)", l.Schedule, l.Lag(), want[l.Schedule])
		}
	}
	if got[0].Schedule != "evening" {
		t.Errorf("ScheduleLags not ordered by schedule: %+v", got)
	}
}

func TestScheduleLag_Lag_NeverNegative(t *testing.T) {
	l := store.ScheduleLag{DueAt: t0, FiredAt: t0.Add(-time.Second)}
	if l.Lag() != 0 {
		t.Errorf("Lag of a run fired before it was due = %v, want 0", l.Lag())
	}
}

func TestTx_AfterCommit_OnlyWhenCommitted(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	for _, c := range []struct {
		name    string
		fail    bool
		wantRan bool
	}{
		{"committed", false, true},
		{"rolled back", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ran := false
			err := st.Write(context.Background(), func(tx *store.Tx) error {
				tx.AfterCommit(func() { ran = true })
				if ran {
					t.Error("AfterCommit ran before the transaction ended")
				}
				if c.fail {
					return errors.New("scripted failure")
				}
				return nil
			})
			if (err != nil) != c.fail {
				t.Fatalf("Write: %v", err)
			}
			if ran != c.wantRan {
				t.Errorf("AfterCommit ran = %v, want %v", ran, c.wantRan)
			}
		})
	}
}
