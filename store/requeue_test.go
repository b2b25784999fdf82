package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// TestStore_Requeue_ReceiptsForTheResendCount: a delivery that came back
// undelivered is requeued by an operator and sent again; the new send's
// receipts move it (the old receipt does not block them), and the event
// log keeps what the provider said of the first send.
func TestStore_Requeue_ReceiptsForTheResendCount(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"))
	c := claim(t, st, store.ClaimOptions{})
	record(t, st, store.Result{ID: c[0].ID, Status: store.StatusSent, ProviderID: "SM1"})
	if _, err := st.ApplyReceipt(context.Background(), c[0].ID, "SM1", "undelivered", "30003"); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Requeue(context.Background(), []int64{c[0].ID}, clk.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Requeue: %d, %v", n, err)
	}
	c = claim(t, st, store.ClaimOptions{})
	if len(c) != 1 {
		t.Fatalf("claimed %d after the requeue, want 1", len(c))
	}
	record(t, st, store.Result{ID: c[0].ID, Status: store.StatusSent, ProviderID: "SM2"})
	changed, err := st.ApplyReceipt(context.Background(), c[0].ID, "SM2", "delivered", "")
	if err != nil || !changed {
		t.Fatalf("receipt for the resend: changed %v, %v; want it applied", changed, err)
	}
	row := rows(t, st)["send:1/a/sms"]
	if row.Status != store.StatusDelivered || row.ProviderID != "SM2" {
		t.Fatalf("row %+v, want delivered with the resend's SID", row)
	}
	evs, err := st.Events(context.Background(), c[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		if e.Reason == "requeued" && strings.Contains(e.Detail, "SM1") && strings.Contains(e.Detail, "undelivered") {
			found = true
		}
	}
	if !found {
		t.Fatalf("events %+v: the requeue event should keep the first send's SID and receipt", evs)
	}
}

// TestStore_Log_RedactAckLinks: read views of the log can hide the tokens
// of acknowledgement links, which would let a reader acknowledge for the
// recipient.
func TestStore_Log_RedactAckLinks(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	const token = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xyz"
	enqueue(t, st, "send:1", delivery("a", func(d *store.NewDelivery) {
		d.Channel, d.Kind, d.Address = "email", "email", "a@example.org"
		d.Text = "Acknowledge: https://crier.example.org/ack/" + token + " by 08:30."
		d.HTML = `<a href="https://crier.example.org/ack/` + token + `">Acknowledge</a>`
	}))
	var plain, redacted store.LogEntry
	ctx := context.Background()
	if err := st.Log(ctx, store.LogFilter{WithBody: true}, func(e *store.LogEntry) error { plain = *e; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := st.Log(ctx, store.LogFilter{WithBody: true, RedactAckLinks: true}, func(e *store.LogEntry) error { redacted = *e; return nil }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.Text, token) {
		t.Fatalf("the stored body lost its link: %q", plain.Text)
	}
	for _, s := range []string{redacted.Text, redacted.HTML} {
		if strings.Contains(s, token) || !strings.Contains(s, "/ack/<redacted>") {
			t.Errorf("redacted body %q still carries the token", s)
		}
	}
}

// TestLogEntry_CSVRow_MatchesColumns: a row has exactly one cell per
// column, with and without bodies, so the CSV export never shifts.
func TestLogEntry_CSVRow_MatchesColumns(t *testing.T) {
	e := store.LogEntry{ID: 7, Kind: "sms", CreatedAt: t0, Subject: "s", Text: "t", HTML: "h"}
	if got := e.CSVRow(false); len(got) != len(store.LogColumns) || got[0] != "7" || got[1] != "sms" {
		t.Fatalf("row %q for columns %q", got, store.LogColumns)
	}
	full := e.CSVRow(true)
	if len(full) != len(store.LogColumns)+len(store.LogBodyColumns) || full[len(full)-1] != "h" {
		t.Fatalf("row with bodies %q", full)
	}
	if sent := full[16]; store.LogColumns[16] != "sent_at" || sent != "" {
		t.Fatalf("sent_at cell %q under %q, want empty for never", sent, store.LogColumns[16])
	}
}
