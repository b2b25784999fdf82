package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// receipt is one status callback in a sequence.
type receipt struct{ status, code string }

// sentDelivery enqueues one SMS delivery, claims it and records it sent
// with provider id sid, as the dispatcher does; it returns the row id.
func sentDelivery(t *testing.T, st *store.Store, key, sid string) int64 {
	t.Helper()
	enqueue(t, st, key, delivery("a"))
	c := claim(t, st, store.ClaimOptions{})
	if len(c) != 1 {
		t.Fatalf("claimed %d deliveries, want 1", len(c))
	}
	record(t, st, store.Result{ID: c[0].ID, Status: store.StatusSent, ProviderID: sid, Segments: 1, Detail: "queued"})
	return c[0].ID
}

func receiptOf(t *testing.T, st *store.Store, id int64) store.ReceiptState {
	t.Helper()
	r, err := st.Receipt(context.Background(), id)
	if err != nil {
		t.Fatalf("Receipt(%d): %v", id, err)
	}
	return r
}

// TestStore_ApplyReceipt_Sequences proves receipts are monotonic and
// idempotent: duplicates and out-of-order callbacks never move a delivery
// backwards, the first final status wins, failures carry the error code
// and its classification, and every change (and only a change) leaves an
// event.
func TestStore_ApplyReceipt_Sequences(t *testing.T) {
	cases := []struct {
		name        string
		seq         []receipt
		wantChanged []bool
		want        store.ReceiptState // Status, Reason, ProviderStatus, ErrorCode
		detail      string             // substring of the detail
		delivered   bool               // delivered_at set
	}{
		{"delivered", []receipt{{"delivered", ""}}, []bool{true},
			store.ReceiptState{Status: "delivered", Reason: "receipt", ProviderStatus: "delivered"}, "Twilio status delivered", true},
		{"sent then delivered then a late sent", []receipt{{"sent", ""}, {"delivered", ""}, {"sent", ""}}, []bool{true, true, false},
			store.ReceiptState{Status: "delivered", Reason: "receipt", ProviderStatus: "delivered"}, "delivered", true},
		{"delivered then a late sending", []receipt{{"delivered", ""}, {"sending", ""}, {"queued", ""}}, []bool{true, false, false},
			store.ReceiptState{Status: "delivered", Reason: "receipt", ProviderStatus: "delivered"}, "delivered", true},
		{"duplicates", []receipt{{"delivered", ""}, {"delivered", ""}, {"delivered", ""}}, []bool{true, false, false},
			store.ReceiptState{Status: "delivered", Reason: "receipt", ProviderStatus: "delivered"}, "delivered", true},
		{"delivered then undelivered: the first final wins", []receipt{{"delivered", ""}, {"undelivered", "30006"}}, []bool{true, false},
			store.ReceiptState{Status: "delivered", Reason: "receipt", ProviderStatus: "delivered"}, "delivered", true},
		{"undelivered then delivered: the first final wins", []receipt{{"undelivered", "30003"}, {"delivered", ""}}, []bool{true, false},
			store.ReceiptState{Status: "failed", Reason: "bad_address", ProviderStatus: "undelivered", ErrorCode: "30003"}, "30003", false},
		{"undelivered 30006 (landline)", []receipt{{"sent", ""}, {"undelivered", "30006"}}, []bool{true, true},
			store.ReceiptState{Status: "failed", Reason: "bad_address", ProviderStatus: "undelivered", ErrorCode: "30006"}, "error 30006 (landline or unreachable carrier)", false},
		{"undelivered 30005", []receipt{{"undelivered", "30005"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "bad_address", ProviderStatus: "undelivered", ErrorCode: "30005"}, "30005", false},
		{"failed 21211", []receipt{{"failed", "21211"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "bad_address", ProviderStatus: "failed", ErrorCode: "21211"}, "21211", false},
		{"failed 21614", []receipt{{"failed", "21614"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "bad_address", ProviderStatus: "failed", ErrorCode: "21614"}, "21614", false},
		{"undelivered 30004 (blocked)", []receipt{{"undelivered", "30004"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "rejected", ProviderStatus: "undelivered", ErrorCode: "30004"}, "30004", false},
		{"undelivered 30007 (carrier filtering)", []receipt{{"undelivered", "30007"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "rejected", ProviderStatus: "undelivered", ErrorCode: "30007"}, "carrier filtering", false},
		{"undelivered 30001 (queue overflow)", []receipt{{"undelivered", "30001"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "server", ProviderStatus: "undelivered", ErrorCode: "30001"}, "30001", false},
		{"undelivered 30008 (unknown)", []receipt{{"undelivered", "30008"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "server", ProviderStatus: "undelivered", ErrorCode: "30008"}, "30008", false},
		{"failed with an unlisted code", []receipt{{"failed", "63016"}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "rejected", ProviderStatus: "failed", ErrorCode: "63016"}, "error 63016", false},
		{"failed without a code", []receipt{{"failed", ""}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "rejected", ProviderStatus: "failed"}, "Twilio status failed", false},
		{"read counts as delivered", []receipt{{"read", ""}}, []bool{true},
			store.ReceiptState{Status: "delivered", Reason: "receipt", ProviderStatus: "read"}, "read", true},
		{"canceled", []receipt{{"canceled", ""}}, []bool{true},
			store.ReceiptState{Status: "failed", Reason: "rejected", ProviderStatus: "canceled"}, "canceled", false},
		{"sending then sent: provider status only", []receipt{{"sending", ""}, {"sent", ""}, {"sending", ""}}, []bool{true, true, false},
			store.ReceiptState{Status: "sent", Reason: "", ProviderStatus: "sent"}, "queued", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock(t0)
			st, path := open(t, clk)
			id := sentDelivery(t, st, "send:1", "SM0001")
			eventsBefore := count(t, path, "delivery_events")
			changes := 0
			for i, r := range tc.seq {
				clk.Add(time.Second)
				changed, err := st.ApplyReceipt(ctx, id, "SM0001", r.status, r.code)
				if err != nil {
					t.Fatalf("receipt %d (%s): %v", i, r.status, err)
				}
				if changed != tc.wantChanged[i] {
					t.Errorf("receipt %d (%s %s): changed = %v, want %v", i, r.status, r.code, changed, tc.wantChanged[i])
				}
				if changed {
					changes++
				}
			}
			got := receiptOf(t, st, id)
			if got.Status != tc.want.Status || got.Reason != tc.want.Reason || got.ProviderStatus != tc.want.ProviderStatus || got.ErrorCode != tc.want.ErrorCode {
				t.Errorf("row = %s/%s provider %s code %q, want %s/%s provider %s code %q", got.Status, got.Reason, got.ProviderStatus, got.ErrorCode,
					tc.want.Status, tc.want.Reason, tc.want.ProviderStatus, tc.want.ErrorCode)
			}
			if !strings.Contains(got.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", got.Detail, tc.detail)
			}
			if got.ProviderID != "SM0001" || got.SentAt.IsZero() {
				t.Errorf("provider id %q, sent at %v: the send's own record must stay", got.ProviderID, got.SentAt)
			}
			if !got.DeliveredAt.IsZero() != tc.delivered {
				t.Errorf("delivered_at = %v, want set: %v", got.DeliveredAt, tc.delivered)
			}
			if n := count(t, path, "delivery_events") - eventsBefore; n != changes {
				t.Errorf("%d events for %d changes", n, changes)
			}
			// The log shows the same final state.
			if e := rows(t, st)["send:1/a/sms"]; e.Status != tc.want.Status {
				t.Errorf("log status %q, want %q", e.Status, tc.want.Status)
			}
		})
	}
}

// TestStore_ApplyReceipt_OptOut21610 proves an undelivered receipt with
// 21610 (the recipient texted STOP to the sender) puts the number on the
// opt-out list.
func TestStore_ApplyReceipt_OptOut21610(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	id := sentDelivery(t, st, "send:1", "SM0001")
	if _, err := st.ApplyReceipt(ctx, id, "SM0001", "failed", "21610"); err != nil {
		t.Fatal(err)
	}
	if got := receiptOf(t, st, id); got.Status != "failed" || got.Reason != "opted_out" || !strings.Contains(got.Detail, "replied STOP") {
		t.Errorf("row %s/%s %q, want failed/opted_out naming the STOP", got.Status, got.Reason, got.Detail)
	}
	out, err := st.OptedOut(ctx, "sms", delivery("a").Address)
	if err != nil || !out {
		t.Errorf("OptedOut = %v, %v; want the number opted out", out, err)
	}
}

// TestStore_ApplyReceipt_RowNotSent proves what a receipt does to a row the
// dispatcher has not recorded as sent: a receipt proves the provider has
// the message, so a row still sending (the callback beat the dispatcher's
// own write) or queued for a retry after an ambiguous failure moves on and
// is not sent again; a suppressed row keeps its status.
func TestStore_ApplyReceipt_RowNotSent(t *testing.T) {
	ctx := context.Background()
	t.Run("sending", func(t *testing.T) {
		st, _ := open(t, newClock(t0))
		enqueue(t, st, "send:1", delivery("a"))
		c := claim(t, st, store.ClaimOptions{})
		changed, err := st.ApplyReceipt(ctx, c[0].ID, "SM0009", "delivered", "")
		if err != nil || !changed {
			t.Fatalf("ApplyReceipt = %v, %v", changed, err)
		}
		// The dispatcher's result arrives after the receipt: it is ignored.
		record(t, st, store.Result{ID: c[0].ID, Status: store.StatusSent, ProviderID: "SM0009", Segments: 1})
		got := receiptOf(t, st, c[0].ID)
		if got.Status != "delivered" || got.ProviderID != "SM0009" || got.SentAt.IsZero() || got.DeliveredAt.IsZero() {
			t.Errorf("row %+v, want delivered with provider id and both times", got)
		}
	})
	t.Run("queued for a retry", func(t *testing.T) {
		clk := newClock(t0)
		st, _ := open(t, clk)
		enqueue(t, st, "send:1", delivery("a"))
		c := claim(t, st, store.ClaimOptions{})
		record(t, st, store.Result{ID: c[0].ID, Status: store.StatusQueued, Reason: "timeout", NextAt: t0.Add(time.Minute)})
		if _, err := st.ApplyReceipt(ctx, c[0].ID, "SM0010", "sent", ""); err != nil {
			t.Fatal(err)
		}
		clk.Add(2 * time.Minute)
		if again := claim(t, st, store.ClaimOptions{}); len(again) != 0 {
			t.Errorf("claimed %d after a sent receipt: a duplicate would go out", len(again))
		}
		if got := receiptOf(t, st, c[0].ID); got.Status != "sent" || got.ProviderID != "SM0010" {
			t.Errorf("row %+v, want sent with the receipt's SID", got)
		}
	})
	t.Run("suppressed", func(t *testing.T) {
		st, _ := open(t, newClock(t0))
		enqueue(t, st, "send:1", delivery("a", func(d *store.NewDelivery) { d.Status, d.Reason = store.StatusSuppressed, "opted_out" }))
		id := rows(t, st)["send:1/a/sms"].ID
		if _, err := st.ApplyReceipt(ctx, id, "SM0011", "delivered", ""); err != nil {
			t.Fatal(err)
		}
		if got := receiptOf(t, st, id); got.Status != "suppressed" || got.Reason != "opted_out" {
			t.Errorf("row %+v, want it still suppressed", got)
		}
	})
}

func TestStore_ApplyReceipt_Errors(t *testing.T) {
	ctx := context.Background()
	st, path := open(t, newClock(t0))
	id := sentDelivery(t, st, "send:1", "SM0001")
	if _, err := st.ApplyReceipt(ctx, id, "SM0001", "exploded", ""); err == nil || !strings.Contains(err.Error(), "exploded") {
		t.Errorf("unknown status: err = %v", err)
	}
	if _, err := st.ApplyReceipt(ctx, id+100, "SM0001", "delivered", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing delivery: err = %v, want ErrNotFound", err)
	}
	if n := count(t, path, "delivery_events"); n != 1 { // the send's own
		t.Errorf("%d events, want only the send's", n)
	}
}

// TestStore_ReceiptDelivery proves how a receipt finds its delivery: by
// the d in the callback URL when the row's provider id agrees (or is not
// known yet), else by the SID.
func TestStore_ReceiptDelivery(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t, newClock(t0))
	enqueue(t, st, "send:1", delivery("a"), delivery("b"), delivery("c"))
	c := claim(t, st, store.ClaimOptions{})
	record(t, st, store.Result{ID: c[0].ID, Status: store.StatusSent, ProviderID: "SMa"},
		store.Result{ID: c[1].ID, Status: store.StatusSent, ProviderID: "SMb"})
	a, b, unsent := c[0].ID, c[1].ID, c[2].ID
	cases := []struct {
		name, d, sid string
		want         int64 // 0: not found
	}{
		{"d and sid agree", fmt.Sprint(a), "SMa", a},
		{"d for a row without provider id yet", fmt.Sprint(unsent), "SMc", unsent},
		{"d disagrees with the sid: the sid wins", fmt.Sprint(a), "SMb", b},
		{"no d", "", "SMb", b},
		{"d not a number", "x1", "SMa", a},
		{"d of no row", "9999", "SMa", a},
		{"d disagrees and the sid is unknown", fmt.Sprint(a), "SMzz", 0},
		{"nothing", "", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.ReceiptDelivery(ctx, tc.d, tc.sid)
			if tc.want == 0 {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("= %d, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("= %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
