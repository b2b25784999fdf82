package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
)

const (
	phoneA = "+447400000001"
	sender = "+447400999000"
)

// TestStore_RecordInbound_StopStart proves a STOP and a START change the
// opt-out list in the same transaction as their inbound row, that START
// removes an opt-out of any scope or source (a provider's 21610 too), and
// that a provider's retry of the same message is recorded once.
func TestStore_RecordInbound_StopStart(t *testing.T) {
	ctx := context.Background()
	st, path := open(t, newClock(t0))
	stop := store.Inbound{From: phoneA, To: sender, Body: "Stop", Action: store.InboundStop, Scope: sender, ProviderID: "SMin1"}
	res, err := st.RecordInbound(ctx, stop)
	if err != nil || res.OptOuts != 1 || res.ID == 0 {
		t.Fatalf("RecordInbound(stop) = %+v, %v; want one opt-out added", res, err)
	}
	again, err := st.RecordInbound(ctx, stop)
	if err != nil || again.ID != res.ID || again.OptOuts != 0 {
		t.Errorf("the same MessageSid again = %+v, %v; want the first row, nothing changed", again, err)
	}
	if n := count(t, path, "inbound"); n != 1 {
		t.Errorf("%d inbound rows, want 1", n)
	}
	if out, _ := st.OptedOut(ctx, "sms", phoneA); !out {
		t.Fatal("not opted out after STOP")
	}
	// A provider's 21610 for another sender adds a second opt-out row.
	if err := st.OptOut(ctx, "sms", phoneA, "clinician-sms", "receipt"); err != nil {
		t.Fatal(err)
	}
	start, err := st.RecordInbound(ctx, store.Inbound{From: phoneA, To: sender, Body: "start", Action: store.InboundStart, ProviderID: "SMin2"})
	if err != nil || start.OptOuts != 2 {
		t.Fatalf("RecordInbound(start) = %+v, %v; want both opt-outs removed", start, err)
	}
	if out, _ := st.OptedOut(ctx, "sms", phoneA); out {
		t.Error("still opted out after START")
	}
	list, err := st.InboundMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Action != "stop" || list[0].Body != "Stop" || list[0].To != sender || list[0].ProviderID != "SMin1" ||
		list[1].Action != "start" || !list[1].At.Equal(t0) {
		t.Errorf("inbound = %+v", list)
	}
}

// ackable enqueues and sends SMS deliveries to phoneA that ask for
// acknowledgement, one trigger per incident, and returns their ids.
func ackable(t *testing.T, st *store.Store, incidents ...string) []int64 {
	t.Helper()
	var ids []int64
	for i, inc := range incidents {
		key := fmt.Sprintf("incident:%s:%d", inc, i)
		tr := enqueue(t, st, key, delivery("a", func(d *store.NewDelivery) { d.Address, d.IncidentID, d.Ack = phoneA, inc, true }))
		for _, c := range claim(t, st, store.ClaimOptions{TriggerIDs: []int64{tr}}) {
			record(t, st, store.Result{ID: c.ID, Status: store.StatusSent, ProviderID: fmt.Sprintf("SM%d", c.ID), Segments: 1})
		}
		ids = append(ids, rows(t, st)[key+"/a/sms"].ID)
	}
	return ids
}

// TestStore_AckableByRef_OnlySent proves an ACK reply never acknowledges
// a message the recipient cannot have read: a newer delivery to the same
// number still queued (deferred by quiet hours) or being sent is passed
// over for the one that was sent, whether the reply names nothing, the
// incident or the unsent delivery itself.
func TestStore_AckableByRef_OnlySent(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	sent := ackable(t, st, "INC-1")[0]
	ask := func(d *store.NewDelivery) { d.Address, d.IncidentID, d.Ack = phoneA, "INC-1", true }
	sending := enqueue(t, st, "incident:INC-1:sending", delivery("a", ask))
	if n := len(claim(t, st, store.ClaimOptions{TriggerIDs: []int64{sending}})); n != 1 {
		t.Fatalf("claimed %d, want the one delivery being sent", n)
	}
	enqueue(t, st, "incident:INC-1:deferred", delivery("a", ask, func(d *store.NewDelivery) {
		d.NextAt, d.Reason = t0.Add(9*time.Hour), "quiet_hours"
	}))
	r := rows(t, st)
	deferred, inFlight := r["incident:INC-1:deferred/a/sms"], r["incident:INC-1:sending/a/sms"]
	if deferred.Status != store.StatusQueued || inFlight.Status != store.StatusSending || deferred.ID < sent || inFlight.ID < sent {
		t.Fatalf("setup: deferred %d %s, in flight %d %s, sent %d", deferred.ID, deferred.Status, inFlight.ID, inFlight.Status, sent)
	}
	if got, err := st.LatestAckable(ctx, "sms", phoneA); err != nil || got != sent {
		t.Errorf("LatestAckable = %d, %v; want the sent delivery %d", got, err, sent)
	}
	for _, ref := range []string{"", "INC-1", "inc-1"} {
		if got, err := st.AckableByRef(ctx, "sms", phoneA, ref); err != nil || got.DeliveryID != sent {
			t.Errorf("AckableByRef(%q) = %+v, %v; want the sent delivery %d", ref, got, err, sent)
		}
	}
	for _, id := range []int64{deferred.ID, inFlight.ID} {
		if got, err := st.AckableByRef(ctx, "sms", phoneA, fmt.Sprint(id)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AckableByRef(%d), not sent = %+v, %v; want ErrNotFound", id, got, err)
		}
	}
}

// TestStore_AckableByRef proves which delivery an ACK reply means: the
// latest acknowledgeable one to that number, the latest of the named
// incident (in any case), or the named delivery, and never a delivery to
// another number or one that asks for no acknowledgement.
func TestStore_AckableByRef(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	sub := sub("a")
	sub.TimeZone = "Europe/London"
	if err := st.Write(ctx, func(tx *store.Tx) error { return tx.UpsertSubscribers([]subscribers.Subscriber{sub}, "config") }); err != nil {
		t.Fatal(err)
	}
	ids := ackable(t, st, "INC-1", "INC-2", "INC-1")
	enqueue(t, st, "send:plain", delivery("a", func(d *store.NewDelivery) { d.Address = phoneA })) // asks for no ack
	otherTr := enqueue(t, st, "send:other", delivery("b", func(d *store.NewDelivery) { d.Ack = true }))
	for _, c := range claim(t, st, store.ClaimOptions{TriggerIDs: []int64{otherTr}}) {
		record(t, st, store.Result{ID: c.ID, Status: store.StatusSent, Segments: 1}) // sent: only its number keeps it out
	}
	other := rows(t, st)["send:other/b/sms"].ID
	cases := []struct {
		name, address, ref string
		want               int64 // 0: not found
		incident           string
	}{
		{"latest", phoneA, "", ids[2], "INC-1"},
		{"incident", phoneA, "INC-2", ids[1], "INC-2"},
		{"incident in lower case", phoneA, "inc-1", ids[2], "INC-1"},
		{"delivery id", phoneA, fmt.Sprint(ids[0]), ids[0], "INC-1"},
		{"another number's delivery id", phoneA, fmt.Sprint(other), 0, ""},
		{"unknown incident", phoneA, "INC-9", 0, ""},
		{"a stranger", "+447400000099", "", 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.AckableByRef(ctx, "sms", tc.address, tc.ref)
			if tc.want == 0 {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("= %+v, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil || got.DeliveryID != tc.want || got.IncidentID != tc.incident || got.TimeZone != "Europe/London" {
				t.Errorf("= %+v, %v; want delivery %d of %s in Europe/London", got, err, tc.want, tc.incident)
			}
		})
	}
}

func TestStore_KnownAddress(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	s := sub("a")
	if err := st.Write(ctx, func(tx *store.Tx) error { return tx.UpsertSubscribers([]subscribers.Subscriber{s}, "config") }); err != nil {
		t.Fatal(err)
	}
	enqueue(t, st, "send:1", delivery("z", func(d *store.NewDelivery) { d.Address = phoneA }))
	for addr, want := range map[string]bool{s.Phone: true, phoneA: true, "+447400000099": false} {
		if got, err := st.KnownAddress(ctx, "sms", addr); err != nil || got != want {
			t.Errorf("KnownAddress(%s) = %v, %v; want %v", addr, got, err, want)
		}
	}
	if _, err := st.KnownAddress(ctx, "fax", phoneA); err == nil {
		t.Error("KnownAddress(fax) did not fail")
	}
}
