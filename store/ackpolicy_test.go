package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

// ackTrigger writes a trigger asking for acknowledgement with an SMS and
// an email delivery to "a" and an SMS to "b", and its policy.
func ackTrigger(tb testing.TB, st *store.Store, clk *fakeClock, key string) int64 {
	tb.Helper()
	ack := func(d *store.NewDelivery) { d.Ack = true }
	email := func(d *store.NewDelivery) {
		d.Channel, d.Kind, d.Address, d.Subject, d.Text = "email", "email", "a@example.org", "Referrals down", "Referrals are down.\nAct now."
	}
	id := enqueue(tb, st, key, delivery("a", ack), delivery("a", ack, email), delivery("b", ack))
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		return tx.SetAckPolicy(store.AckPolicy{TriggerID: id, Within: 15 * time.Minute, Quorum: 1, Ladder: []string{"email", "slack"},
			Deputy: "deputies", DueAt: clk.Now().Add(15 * time.Minute)})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func TestStore_SetAckPolicy_FirstWins(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	id := ackTrigger(t, st, clk, "k1")
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		return tx.SetAckPolicy(store.AckPolicy{TriggerID: id, Within: time.Hour, DueAt: t0.Add(time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.ActiveAckPolicies(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("ActiveAckPolicies = %v, %v", list, err)
	}
	p := list[0]
	if p.Within != 15*time.Minute || p.Quorum != 1 || !slices.Equal(p.Ladder, []string{"email", "slack"}) || p.Deputy != "deputies" ||
		!p.DueAt.Equal(t0.Add(15*time.Minute)) || p.State != store.AckOpen || p.TriggerKey != "k1" || p.TriggerKind != "send" {
		t.Errorf("policy %+v", p)
	}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.SetAckState(id, store.AckMet) }); err != nil {
		t.Fatal(err)
	}
	if list, _ := st.ActiveAckPolicies(context.Background()); len(list) != 0 {
		t.Errorf("a met policy is still active: %+v", list)
	}
}

func TestStore_AckLinkTarget_PrefersEmail(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		return tx.UpsertSubscribers([]subscribers.Subscriber{{ID: "a", Name: "Dr A", Locale: "cy", TimeZone: "Europe/London"}}, "config")
	})
	if err != nil {
		t.Fatal(err)
	}
	id := ackTrigger(t, st, clk, "k1")
	got, err := st.AckLinkTarget(context.Background(), id, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != "email" || got.Subject != "Referrals down" || got.Name != "Dr A" || got.Locale != "cy" || !got.DueAt.Equal(t0.Add(15*time.Minute)) {
		t.Errorf("target %+v", got)
	}
	b, err := st.AckLinkTarget(context.Background(), id, "b", 0)
	if err != nil || b.Kind != "sms" || b.Subject != "Referrals are down in Wales." {
		t.Errorf("b's target %+v, %v (subject from the text's first line)", b, err)
	}
	byID, err := st.AckLinkTarget(context.Background(), 0, "", b.DeliveryID)
	if err != nil || byID.SubscriberID != "b" || byID.TriggerID != id {
		t.Errorf("by delivery id: %+v, %v", byID, err)
	}
	if _, err := st.RecordAck(context.Background(), got.DeliveryID, "email", ""); err != nil {
		t.Fatal(err)
	}
	again, _ := st.AckLinkTarget(context.Background(), id, "a", 0)
	if again.AckedAt.IsZero() || again.AckVia != "email" {
		t.Errorf("after the acknowledgement: %+v", again)
	}
	for _, tt := range []struct {
		name string
		trig int64
		sub  string
		del  int64
	}{{"unknown subscriber", id, "zz", 0}, {"unknown trigger", id + 99, "a", 0}, {"unknown delivery", 0, "", 999}} {
		if _, err := st.AckLinkTarget(context.Background(), tt.trig, tt.sub, tt.del); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", tt.name, err)
		}
	}
	plain := enqueue(t, st, "k2", delivery("c"))
	if _, err := st.AckLinkTarget(context.Background(), plain, "c", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a delivery that asks for no acknowledgement was found: %v", err)
	}
	asks, planned, err := st.DeliveryAsksAck(context.Background(), got.DeliveryID)
	if err != nil || !asks || !planned.Equal(t0) {
		t.Errorf("DeliveryAsksAck = %v %v %v", asks, planned, err)
	}
}

func TestStore_SuppressQueued_OnlyQueued(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	id := ackTrigger(t, st, clk, "k1")
	cl := claim(t, st, store.ClaimOptions{Channel: "sms", Limit: 1})
	var ids []int64
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		dels, err := tx.AckDeliveries(id)
		for _, d := range dels {
			ids = append(ids, d.ID)
		}
		return err
	})
	if err != nil || len(ids) != 3 {
		t.Fatal(ids, err)
	}
	var n int
	err = st.Write(context.Background(), func(tx *store.Tx) error {
		n, err = tx.SuppressQueued(ids, "ack_received", "acknowledged")
		return err
	})
	if err != nil || n != 2 {
		t.Fatalf("SuppressQueued = %d, %v; want the 2 still queued", n, err)
	}
	dels, _ := st.AckDeliveries(context.Background(), id)
	for _, d := range dels {
		sending := d.ID == cl[0].ID
		if sending != (d.Status == store.StatusSending) || !sending && (d.Status != store.StatusSuppressed || d.Reason != "ack_received") {
			t.Errorf("delivery %d: %s/%s", d.ID, d.Status, d.Reason)
		}
	}
	ev, _ := st.Events(context.Background(), ids[1])
	if len(ev) != 1 || ev[0].Status != "suppressed" || ev[0].Reason != "ack_received" {
		t.Errorf("events %+v", ev)
	}
}
