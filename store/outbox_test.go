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

func TestStore_ReleaseOrphans(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		advance time.Duration
		dead    bool // the holder is known dead
		resend  bool
		// want: the never-attempted row and the one whose request had started
		claimed, sending string
		rec              store.Recovered
	}{
		{"holder alive, lease running: nothing changes", 10 * time.Second, false, false, "queued", "sending", store.Recovered{}},
		{"holder dead: claims released at once, the started request in doubt", 0, true, false, "queued", "unknown", store.Recovered{Released: 1, InDoubt: 1}},
		{"holder dead, resend policy", 0, true, true, "queued", "queued", store.Recovered{Released: 1, InDoubt: 1}},
		{"heartbeat ran out", 20 * time.Second, false, false, "queued", "unknown", store.Recovered{Released: 1, InDoubt: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := open(t, clk)
			if err := st.NodeHeartbeat(ctx, "node-a", 15*time.Second); err != nil {
				t.Fatal(err)
			}
			enqueue(t, st, "send:1", delivery("a"), delivery("b"), delivery("c", func(d *store.NewDelivery) { d.Channel = "other" }))
			// a is claimed ahead (a lease, nothing attempted); b's
			// request to the provider starts (a claim to send).
			ca, err := st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 1, Lease: time.Minute, Holder: "node-a"})
			if err != nil || len(ca) != 1 {
				t.Fatalf("Claim: %d, %v", len(ca), err)
			}
			cb, err := st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 1, Lease: time.Minute, Holder: "node-a", Send: true})
			if err != nil || len(cb) != 1 {
				t.Fatalf("Claim to send: %d, %v", len(cb), err)
			}
			if _, err := st.Claim(ctx, store.ClaimOptions{Channel: "other", Limit: 10, Lease: time.Minute, Holder: "node-a"}); err != nil {
				t.Fatal(err)
			}
			startedAt := clk.Now()
			clk.Add(tt.advance)
			rec, err := st.ReleaseOrphans(ctx, store.Orphans{Channel: "sms", Resend: tt.resend, Self: "node-b",
				Dead: func(h string) bool { return tt.dead && h == "node-a" }})
			if err != nil || rec != tt.rec {
				t.Fatalf("ReleaseOrphans = %+v, %v; want %+v", rec, err, tt.rec)
			}
			r := rows(t, st)
			a, b := r["send:1/a/sms"], r["send:1/b/sms"]
			if a.Status != tt.claimed || a.Attempts != 0 {
				t.Errorf("never-attempted row: %s after %d attempts, want %s and none spent", a.Status, a.Attempts, tt.claimed)
			}
			if ev, _ := st.Events(ctx, a.ID); len(ev) != 0 {
				t.Errorf("never-attempted row has events %+v: nothing happened to it", ev)
			}
			if b.Status != tt.sending || b.Attempts != 1 {
				t.Errorf("started row: %s after %d attempts, want %s after 1", b.Status, b.Attempts, tt.sending)
			}
			if tt.rec.InDoubt == 1 {
				if b.Reason != "in_doubt" || !strings.Contains(b.Detail, startedAt.Format("15:04:05.000")) || !strings.Contains(b.Detail, "node-a") {
					t.Errorf("in-doubt row %s: %q, want in_doubt with when the request started and by whom", b.Reason, b.Detail)
				}
				if !b.AttemptAt.Equal(startedAt) {
					t.Errorf("attempt started %v, want %v", b.AttemptAt, startedAt)
				}
			}
			if c := r["send:1/c/other"]; c.Status != store.StatusQueued {
				t.Errorf("another channel's claim changed: %s", c.Status)
			}
			// A released claim is claimable again, by anyone.
			if tt.rec.Released == 1 {
				got, err := st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 10, Lease: time.Minute, Holder: "node-b"})
				if err != nil || len(got) == 0 || got[0].ID != a.ID {
					t.Errorf("after release, node-b claimed %+v, %v; want a", got, err)
				}
			}
		})
	}
}

// A claim is not an attempt: a process's own claims are never taken as
// orphans, a result from a process that lost its claim is ignored, and a
// claimed row is claimed by nobody else, and a result from a process that
// does not hold it is ignored.
func TestStore_Claim_HolderOwnsItsRows(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"), delivery("b"))
	ahead, err := st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 1, Lease: time.Minute, Holder: "node-a"})
	if err != nil || len(ahead) != 1 || ahead[0].Holder != "node-a" || ahead[0].Attempts != 1 {
		t.Fatalf("Claim = %+v, %v", ahead, err)
	}
	if c, _ := st.Counts(ctx, nil); c[store.StatusQueued] != 2 {
		t.Errorf("counts after a claim ahead = %v, want it still queued (nothing attempted)", c)
	}
	cs, err := st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 5, Lease: time.Minute, Holder: "node-a", Send: true})
	if err != nil || len(cs) != 1 || cs[0].ID == ahead[0].ID || cs[0].Attempts != 1 {
		t.Fatalf("Claim to send = %+v, %v; want the other row, its first attempt", cs, err)
	}
	if c, _ := st.Counts(ctx, nil); c[store.StatusSending] != 1 {
		t.Errorf("counts after a claim to send = %v, want one sending", c)
	}
	if again, _ := st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 5, Lease: time.Minute, Holder: "node-b", Send: true}); len(again) != 0 {
		t.Fatalf("a claimed row was claimed again: %+v", again)
	}
	if rec, err := st.ReleaseOrphans(ctx, store.Orphans{Channel: "sms", Self: "node-a"}); err != nil || rec != (store.Recovered{}) {
		t.Errorf("node-a's own claims recovered: %+v, %v", rec, err)
	}
	record(t, st, store.Result{ID: cs[0].ID, Status: store.StatusSent, Holder: "node-b"})
	if r := rows(t, st)["send:1/b/sms"]; r.Status != store.StatusSending {
		t.Errorf("a result from a process that does not hold the row was applied: %s", r.Status)
	}
	record(t, st, store.Result{ID: cs[0].ID, Status: store.StatusSent, ProviderID: "SM1", Segments: 2, Holder: "node-a"})
	r := rows(t, st)["send:1/b/sms"]
	if r.Status != store.StatusSent || r.Attempts != 1 || r.ProviderSegments != 2 || r.Segments != 1 {
		t.Errorf("row = %+v, want sent after 1 attempt with crier's 1 segment and the provider's 2", r)
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
	if _, err := st.ReleaseOrphans(context.Background(), store.Orphans{Channel: "sms"}); err != nil {
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
