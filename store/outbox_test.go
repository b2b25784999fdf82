package store_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

func TestTx_CreateTrigger_Idempotent(t *testing.T) {
	clk := newClock(t0)
	st, path := open(t, clk)
	first := enqueue(t, st, "briefing:morning:2026-01-15T08:00Z", delivery("a"), delivery("b"))
	clk.Add(30 * time.Second)
	var tr store.Trigger
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		tr = store.Trigger{Key: "briefing:morning:2026-01-15T08:00Z", Kind: "briefing"}
		created, err := tx.CreateTrigger(&tr)
		if created {
			t.Error("CreateTrigger created a second trigger for the same key")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.ID != first || tr.Planned != 2 || !tr.CreatedAt.Equal(t0) {
		t.Errorf("existing trigger = %+v, want id %d, 2 planned, created at %v", tr, first, t0)
	}
	if n := count(t, path, "triggers"); n != 1 {
		t.Errorf("%d triggers, want 1", n)
	}
}

func TestEnqueuer_Add(t *testing.T) {
	clk := newClock(t0)
	st, path := open(t, clk)
	var written int
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		tr := &store.Trigger{Key: "send:1", Kind: "send"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		ds := []store.NewDelivery{
			delivery("a"),
			delivery("b"),
			delivery("a", func(d *store.NewDelivery) { d.Text = "a second copy through another target" }),
			delivery("a", func(d *store.NewDelivery) { d.Channel, d.Kind, d.Address = "email", "email", "a@example.org" }),
			delivery("c", func(d *store.NewDelivery) { d.Text = "Welsh text" }),
			delivery("d", func(d *store.NewDelivery) {
				d.Status, d.Reason, d.Text, d.Segments = store.StatusSuppressed, "no_address", "", 0
			}),
		}
		for i := range ds {
			if err := enq.Add(&ds[i]); err != nil {
				return err
			}
		}
		if err := enq.Flush(); err != nil {
			return err
		}
		written = enq.Written()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if written != 5 {
		t.Errorf("Written = %d, want 5 (the second a/sms is a duplicate)", written)
	}
	got := rows(t, st)
	if len(got) != 5 {
		t.Fatalf("%d rows, want 5", len(got))
	}
	if a := got["send:1/a/sms"]; a.Text != "Referrals are down in Wales." {
		t.Errorf("a/sms text %q: the first delivery must be kept", a.Text)
	}
	if d := got["send:1/d/sms"]; d.Status != store.StatusSuppressed || d.Text != "" {
		t.Errorf("d/sms = %+v, want suppressed without a body", d)
	}
	// Four rows with a body share two distinct bodies.
	var bodies int
	if err := raw(t, path).QueryRow(`SELECT COUNT(DISTINCT message_id) FROM deliveries`).Scan(&bodies); err != nil {
		t.Fatal(err)
	}
	if bodies != 2 {
		t.Errorf("rows refer to %d bodies, want 2 (one per distinct text)", bodies)
	}
	for k, r := range got {
		if !r.CreatedAt.Equal(t0) || r.Status == store.StatusQueued && !r.NextAttempt.Equal(t0) {
			t.Errorf("%s: created %v next %v, want both %v", k, r.CreatedAt, r.NextAttempt, t0)
		}
	}
}

func TestEnqueuer_Flush_Batches(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	const n = 150 // more than two multi-row batches
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		tr := &store.Trigger{Key: "send:many", Kind: "send"}
		if _, err := tx.CreateTrigger(tr); err != nil {
			return err
		}
		enq, err := tx.Enqueuer(tr.ID)
		if err != nil {
			return err
		}
		defer enq.Close()
		for i := range n {
			d := delivery(fmt.Sprintf("s%03d", i%(n-10))) // the last ten repeat earlier subscribers
			if err := enq.Add(&d); err != nil {
				return err
			}
		}
		if err := enq.Flush(); err != nil {
			return err
		}
		if got := enq.Written(); got != n-10 {
			t.Errorf("Written = %d, want %d", got, n-10)
		}
		return enq.Flush() // nothing left: a no-op
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(t, st); len(got) != n-10 {
		t.Errorf("%d rows, want %d", len(got), n-10)
	}
}

func TestStore_RecoverInFlight(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
		resend  bool
		n       int64
		status  string
	}{
		{"lease still running: another process may be sending", 30 * time.Second, true, 0, store.StatusSending},
		{"resend policy queues it again", 2 * time.Minute, true, 1, store.StatusQueued},
		{"hold policy leaves it to an operator", 2 * time.Minute, false, 1, store.StatusUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := open(t, clk)
			enqueue(t, st, "send:1", delivery("a"), delivery("b", func(d *store.NewDelivery) { d.Channel = "other" }))
			claim(t, st, store.ClaimOptions{Lease: time.Minute})
			claim(t, st, store.ClaimOptions{Channel: "other", Lease: time.Minute})
			clk.Add(tt.advance)
			n, err := st.RecoverInFlight(context.Background(), "sms", tt.resend)
			if err != nil || n != tt.n {
				t.Fatalf("RecoverInFlight = %d, %v; want %d", n, err, tt.n)
			}
			r := rows(t, st)
			if got := r["send:1/a/sms"]; got.Status != tt.status || (tt.n == 1 && (got.Reason != "in_doubt" || got.Attempts != 1)) {
				t.Errorf("row = %s/%s after %d attempts, want %s/in_doubt", got.Status, got.Reason, got.Attempts, tt.status)
			}
			if tt.resend && tt.n == 1 && !r["send:1/a/sms"].NextAttempt.Equal(clk.Now()) {
				t.Errorf("requeued for %v, want now", r["send:1/a/sms"].NextAttempt)
			}
			if got := r["send:1/b/other"]; got.Status != store.StatusSending {
				t.Errorf("another channel's row was recovered: %s", got.Status)
			}
		})
	}
}

func TestStore_ExpireOverdue(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	deadline := func(d time.Duration) func(*store.NewDelivery) {
		return func(nd *store.NewDelivery) { nd.Deadline = t0.Add(d) }
	}
	enqueue(t, st, "send:1",
		delivery("due", deadline(time.Hour)),
		delivery("later", deadline(3*time.Hour)),
		delivery("never"),
		delivery("busy", deadline(time.Hour), func(d *store.NewDelivery) { d.Channel = "email" }),
	)
	claim(t, st, store.ClaimOptions{Channel: "email", Lease: 24 * time.Hour})
	clk.Add(2 * time.Hour)
	n, err := st.ExpireOverdue(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("ExpireOverdue = %d, %v; want 1", n, err)
	}
	want := map[string]string{"send:1/due/sms": "expired/deadline", "send:1/later/sms": "queued/", "send:1/never/sms": "queued/", "send:1/busy/email": "sending/"}
	for k, r := range rows(t, st) {
		if got := r.Status + "/" + r.Reason; got != want[k] {
			t.Errorf("%s = %s, want %s", k, got, want[k])
		}
	}
}

func TestStore_Requeue(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"), delivery("b"), delivery("c"))
	c := claim(t, st, store.ClaimOptions{Lease: time.Minute})
	record(t, st,
		store.Result{ID: c[0].ID, Status: store.StatusSent},
		store.Result{ID: c[1].ID, Status: store.StatusFailed, Reason: "server"})
	clk.Add(2 * time.Minute)
	if _, err := st.RecoverInFlight(context.Background(), "sms", false); err != nil {
		t.Fatal(err)
	}
	deadline := clk.Now().Add(time.Hour)
	n, err := st.Requeue(context.Background(), []int64{c[0].ID, c[1].ID, c[2].ID}, deadline)
	if err != nil || n != 2 {
		t.Fatalf("Requeue = %d, %v; want 2 (not the sent one)", n, err)
	}
	r := rows(t, st)
	if got := r["send:1/a/sms"]; got.Status != store.StatusSent {
		t.Errorf("a sent delivery was requeued: %s", got.Status)
	}
	for _, k := range []string{"send:1/b/sms", "send:1/c/sms"} {
		if got := r[k]; got.Status != store.StatusQueued || got.Attempts != 0 || got.Reason != "requeued" || !got.NextAttempt.Equal(clk.Now()) {
			t.Errorf("%s = %+v, want queued now with attempts reset", k, got)
		}
	}
	again := claim(t, st, store.ClaimOptions{})
	if len(again) != 2 || !again[0].Deadline.Equal(deadline) {
		t.Errorf("claimed after Requeue: %+v, want 2 with the new deadline", again)
	}
}

func TestStore_Pending(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	one := enqueue(t, st, "send:1", delivery("a"), delivery("b", func(d *store.NewDelivery) { d.NextAt = t0.Add(time.Hour) }))
	two := enqueue(t, st, "send:2", delivery("c", func(d *store.NewDelivery) { d.NextAt = t0.Add(time.Minute) }),
		delivery("d", func(d *store.NewDelivery) { d.Status = store.StatusSuppressed }))
	claim(t, st, store.ClaimOptions{TriggerIDs: []int64{one}}) // a is sending
	tests := []struct {
		ids  []int64
		n    int
		next time.Time
	}{
		{[]int64{one}, 2, t0.Add(time.Hour)},
		{[]int64{two}, 1, t0.Add(time.Minute)},
		{nil, 3, t0.Add(time.Minute)},
	}
	for _, tt := range tests {
		n, next, err := st.Pending(context.Background(), tt.ids)
		if err != nil || n != tt.n || !next.Equal(tt.next) {
			t.Errorf("Pending(%v) = %d, %v, %v; want %d, %v", tt.ids, n, next, err, tt.n, tt.next)
		}
	}
	if c, _ := st.Counts(context.Background(), []int64{two}); !reflect.DeepEqual(c, map[string]int{"queued": 1, "suppressed": 1}) {
		t.Errorf("Counts(send:2) = %v", c)
	}
}

func TestStore_Log_Filters(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"), delivery("b", func(d *store.NewDelivery) { d.Channel, d.Kind = "email", "email" }))
	clk.Add(time.Hour)
	enqueue(t, st, "send:2", delivery("a", func(d *store.NewDelivery) { d.Status, d.Reason = store.StatusSuppressed, "opted_out" }))
	tests := []struct {
		name string
		f    store.LogFilter
		want []string
	}{
		{"everything", store.LogFilter{}, []string{"send:1/a/sms", "send:1/b/email", "send:2/a/sms"}},
		{"trigger", store.LogFilter{Trigger: "send:2"}, []string{"send:2/a/sms"}},
		{"status", store.LogFilter{Status: store.StatusQueued}, []string{"send:1/a/sms", "send:1/b/email"}},
		{"kind", store.LogFilter{Kind: "email"}, []string{"send:1/b/email"}},
		{"subscriber", store.LogFilter{Subscriber: "a"}, []string{"send:1/a/sms", "send:2/a/sms"}},
		{"since", store.LogFilter{Since: t0.Add(time.Minute)}, []string{"send:2/a/sms"}},
		{"page", store.LogFilter{AfterID: 1, Limit: 1}, []string{"send:1/b/email"}},
	}
	for _, tt := range tests {
		var got []string
		err := st.Log(context.Background(), tt.f, func(e *store.LogEntry) error {
			got = append(got, store.DeliveryKey(e.Trigger, e.Subscriber, e.Channel))
			if !tt.f.WithBody && e.Text != "" {
				t.Errorf("%s: body returned without WithBody", tt.name)
			}
			return nil
		})
		if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: Log = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}
