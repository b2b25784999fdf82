package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

func TestStore_Tally_ByChannelStatusAndAcks(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	ctx := context.Background()
	email := func(d *store.NewDelivery) {
		d.Channel, d.Kind, d.Address = "mail", "email", d.SubscriberID+"@example.org"
	}
	inc := func(d *store.NewDelivery) { d.IncidentID = "INC-1" }
	suppressed := func(d *store.NewDelivery) { d.Status, d.Reason = store.StatusSuppressed, "no_address" }
	a := enqueue(t, st, "incident:INC-1:1", delivery("a", inc), delivery("b", inc), delivery("c", inc, suppressed), delivery("a", inc, email))
	enqueue(t, st, "send:other", delivery("z"))
	sent := claim(t, st, store.ClaimOptions{TriggerIDs: []int64{a}})
	if len(sent) != 2 {
		t.Fatalf("claimed %d sms deliveries, want 2", len(sent))
	}
	record(t, st, store.Result{ID: sent[0].ID, Status: store.StatusSent}, store.Result{ID: sent[1].ID, Status: store.StatusFailed, Reason: "bad_address"})
	if _, err := st.RecordAck(ctx, sent[0].ID, "sms", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    store.TallyFilter
		want []store.TallyRow
	}{
		{"incident", store.TallyFilter{IncidentID: "INC-1"}, []store.TallyRow{
			// the acknowledgement marks every delivery of the trigger to that person, the email too
			{Channel: "mail", Kind: "email", Status: "queued", N: 1, Acked: 1},
			{Channel: "sms", Kind: "sms", Status: "failed", N: 1},
			{Channel: "sms", Kind: "sms", Status: "sent", N: 1, Acked: 1},
			{Channel: "sms", Kind: "sms", Status: "suppressed", N: 1},
		}},
		{"trigger", store.TallyFilter{TriggerID: a + 1}, []store.TallyRow{{Channel: "sms", Kind: "sms", Status: "queued", N: 1}}},
		{"nothing matches", store.TallyFilter{IncidentID: "INC-9"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.Tally(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Tally(%+v) =\n%+v\nwant\n%+v", tt.f, got, tt.want)
			}
		})
	}
}

func TestStore_RecentTriggers_NewestFirstPlannedOnly(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	ctx := context.Background()
	first := enqueue(t, st, "send:first", delivery("a"))
	enqueue(t, st, "send:empty") // planned nothing: not worth following
	clk.Add(time.Minute)
	second := enqueue(t, st, "send:second", delivery("a"), delivery("b"))
	got, err := st.RecentTriggers(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, tr := range got {
		ids = append(ids, tr.ID)
	}
	if !reflect.DeepEqual(ids, []int64{second, first}) {
		t.Fatalf("RecentTriggers ids = %v, want [%d %d]", ids, second, first)
	}
	if got[0].Key != "send:second" || got[0].Planned != 2 || !got[0].CreatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("newest trigger = %+v", got[0])
	}
	one, err := st.Trigger(ctx, first)
	if err != nil || one.Key != "send:first" || one.Planned != 1 {
		t.Errorf("Trigger(%d) = %+v, %v", first, one, err)
	}
	if _, err := st.Trigger(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Trigger(999) error = %v, want ErrNotFound", err)
	}
}

func TestStore_Outcomes_BucketsByPlanningTime(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	ctx := context.Background()
	enqueue(t, st, "send:old", delivery("old")) // before the window
	clk.Add(2 * time.Hour)
	early := enqueue(t, st, "send:early", delivery("a"), delivery("b"))
	clk.Add(90 * time.Minute)
	enqueue(t, st, "send:late", delivery("c", func(d *store.NewDelivery) { d.Status, d.Reason = store.StatusSuppressed, "opted_out" }))
	cs := claim(t, st, store.ClaimOptions{TriggerIDs: []int64{early}})
	record(t, st, store.Result{ID: cs[0].ID, Status: store.StatusSent}, store.Result{ID: cs[1].ID, Status: store.StatusSent})

	since := t0.Add(time.Hour)
	got, err := st.Outcomes(ctx, since, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.OutcomeBucket{
		{Start: since.Add(time.Hour), Channel: "sms", Status: "sent", N: 2},
		{Start: since.Add(2 * time.Hour), Channel: "sms", Status: "suppressed", N: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Outcomes =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := st.Outcomes(ctx, since, 0); err == nil {
		t.Error("Outcomes with a zero bucket width succeeded")
	}
}
