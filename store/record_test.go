package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/store/storetest"
)

// Record writes a batch of outcomes in one transaction: each lands on its
// own row with its own provider id, detail (whatever bytes a provider puts
// in it) and one event; an outcome for a delivery no longer sending is
// ignored, and two outcomes for one delivery apply in order.
func TestStore_Record_Outcomes(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:r", delivery("a"), delivery("b"), delivery("c"), delivery("d"), delivery("e"))
	cs := claim(t, st, store.ClaimOptions{})
	if len(cs) != 5 {
		t.Fatalf("claimed %d, want 5", len(cs))
	}
	id := map[string]int64{}
	for _, c := range cs {
		id[c.SubscriberID] = c.ID
	}
	odd := "250 2.0.0 \"queued\" as <x\\y>\n\ttab \x01 ŵ ŷ"
	record(t, st,
		store.Result{ID: id["a"], Status: store.StatusSent, ProviderID: "SM-a", Detail: odd, Segments: 2},
		store.Result{ID: id["b"], Status: store.StatusSent, ProviderID: "SM-\xff-b", Detail: "not UTF-8"},
		store.Result{ID: id["c"], Status: store.StatusQueued, Reason: "server", Detail: "451 later", NextAt: t0.Add(time.Minute)},
		store.Result{ID: id["d"], Status: store.StatusFailed, Reason: "bad_address", Detail: "21211"},
		store.Result{ID: id["e"], Status: store.StatusSent, ProviderID: "SM-e"},
	)
	// A late outcome for a row that is no longer sending changes nothing.
	record(t, st, store.Result{ID: id["a"], Status: store.StatusSent, ProviderID: "SM-late", Detail: "late"})
	got := rows(t, st)
	// SQLite keeps the bytes as they came; PostgreSQL's text is UTF-8, and
	// the byte that is not becomes U+FFFD rather than failing the record.
	notUTF8 := "SM-\xff-b"
	if storetest.Engine() == "postgres" {
		notUTF8 = "SM-\ufffd-b"
	}
	want := map[string]struct{ status, provider, detail string }{
		"a": {store.StatusSent, "SM-a", odd},
		"b": {store.StatusSent, notUTF8, "not UTF-8"},
		"c": {store.StatusQueued, "", "451 later"},
		"d": {store.StatusFailed, "", "21211"},
		"e": {store.StatusSent, "SM-e", ""},
	}
	for sub, w := range want {
		e := got[store.DeliveryKey("send:r", sub, "sms")]
		if e.Status != w.status || e.ProviderID != w.provider || e.Detail != w.detail {
			t.Errorf("%s: %s %q %q, want %s %q %q", sub, e.Status, e.ProviderID, e.Detail, w.status, w.provider, w.detail)
		}
		evs, err := st.Events(context.Background(), id[sub])
		if err != nil {
			t.Fatal(err)
		}
		if n := len(evs); n != 1 || evs[0].Status != w.status || evs[0].Detail != w.detail {
			t.Errorf("%s: events %+v, want one %s event with the detail", sub, evs, w.status)
		}
	}
	if e := got[store.DeliveryKey("send:r", "a", "sms")]; e.ProviderSegments != 2 || e.Attempts != 1 {
		t.Errorf("a: %d segments by the provider's count after %d attempts, want 2 after 1", e.ProviderSegments, e.Attempts)
	}

	// Two outcomes for one delivery in one batch apply in order: the
	// first wins, the second finds it no longer sending.
	clk.Add(2 * time.Minute)
	c := claim(t, st, store.ClaimOptions{})
	if len(c) != 1 || c[0].SubscriberID != "c" {
		t.Fatalf("claimed %v, want c's retry", claimedKeys(c))
	}
	record(t, st,
		store.Result{ID: c[0].ID, Status: store.StatusQueued, Reason: "stopped", Uncount: true, NextAt: clk.Now()},
		store.Result{ID: c[0].ID, Status: store.StatusSent, ProviderID: "SM-c"},
	)
	if e := rows(t, st)[store.DeliveryKey("send:r", "c", "sms")]; e.Status != store.StatusQueued || e.Reason != "stopped" {
		t.Errorf("c after two outcomes: %s %s, want the first (queued, stopped)", e.Status, e.Reason)
	}
}
