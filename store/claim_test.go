package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
)

func TestStore_Claim(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	later := t0.Add(time.Minute)
	trig := enqueue(t, st, "send:1",
		delivery("low"),
		delivery("high", func(d *store.NewDelivery) { d.Priority = 2 }),
		delivery("later", func(d *store.NewDelivery) { d.NextAt = later }),
		delivery("quiet", func(d *store.NewDelivery) { d.Status, d.Reason = store.StatusSuppressed, "opted_out" }),
		delivery("mail", func(d *store.NewDelivery) { d.Channel, d.Kind = "email", "email" }),
		delivery("mid", func(d *store.NewDelivery) { d.Priority = 1 }),
	)
	other := enqueue(t, st, "send:2", delivery("x"))

	tests := []struct {
		name    string
		opts    store.ClaimOptions
		advance time.Duration
		want    []string
	}{
		{"most urgent first, limited", store.ClaimOptions{Limit: 2}, 0, []string{"send:1/high/sms", "send:1/mid/sms"}},
		{"only the given triggers", store.ClaimOptions{TriggerIDs: []int64{other}}, 0, []string{"send:2/x/sms"}},
		{"the rest that is due", store.ClaimOptions{}, 0, []string{"send:1/low/sms"}},
		{"nothing until the next attempt is due", store.ClaimOptions{TriggerIDs: []int64{trig}}, 0, nil},
		{"due once the clock gets there", store.ClaimOptions{}, time.Minute, []string{"send:1/later/sms"}},
		{"another channel", store.ClaimOptions{Channel: "email"}, 0, []string{"send:1/mail/email"}},
	}
	for _, tt := range tests {
		clk.Add(tt.advance)
		got := claim(t, st, tt.opts)
		if keys := claimedKeys(got); !reflect.DeepEqual(keys, tt.want) && (len(keys) > 0 || len(tt.want) > 0) {
			t.Errorf("%s: claimed %v, want %v", tt.name, keys, tt.want)
		}
		for _, c := range got {
			if c.Attempts != 1 || c.Text == "" || c.Address == "" || c.TriggerKey == "" {
				t.Errorf("%s: claimed %+v, want attempt 1 with its body and address", tt.name, c)
			}
		}
	}
	c, _ := st.Counts(context.Background(), nil)
	if c[store.StatusSending] != 6 || c[store.StatusSuppressed] != 1 || c[store.StatusQueued] != 0 {
		t.Errorf("counts = %v, want 6 sending and the suppressed one untouched", c)
	}
	if n, _, err := st.Pending(context.Background(), []int64{trig}); err != nil || n != 5 {
		t.Errorf("Pending(send:1) = %d, %v; want 5 (sending counts)", n, err)
	}
}

// Deliveries about one incident to one address go one at a time, in
// order, and each gets the thread its first one started.
func TestStore_Claim_Serial(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	inc, err := incidents.Open(incidents.Change{Title: "Referrals down", Severity: "major"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
		t.Fatal(err)
	}
	slack := func(addr, incident string) func(*store.NewDelivery) {
		return func(d *store.NewDelivery) {
			d.Channel, d.Kind, d.Address, d.IncidentID = "slack", "slack", addr, incident
		}
	}
	enqueue(t, st, "incident:INC-1:1", delivery("ops", slack("C1", "INC-1")), delivery("north", slack("C2", "INC-1")))
	enqueue(t, st, "incident:INC-1:2", delivery("ops", slack("C1", "INC-1")))
	enqueue(t, st, "send:3", delivery("ops", slack("C1", "")))
	enqueue(t, st, "incident:INC-1:4", delivery("ops", slack("C1", "INC-1")))
	serial := store.ClaimOptions{Channel: "slack", Serial: true}

	steps := []struct {
		name   string
		before func(t *testing.T, claimed map[string]store.Claimed)
		want   map[string]string // key → thread it is claimed with
	}{
		{"the first per address, and a message outside any incident", nil,
			map[string]string{"incident:INC-1:1/ops/slack": "", "incident:INC-1:1/north/slack": "", "send:3/ops/slack": ""}},
		{"nothing while the first is sending", nil, nil},
		{"nothing while the first waits for a retry", func(t *testing.T, c map[string]store.Claimed) {
			record(t, st, store.Result{ID: c["incident:INC-1:1/ops/slack"].ID, Status: store.StatusQueued, Reason: "server", NextAt: t0.Add(time.Minute)})
		}, nil},
		{"the retry of the first", func(t *testing.T, c map[string]store.Claimed) { clk.Add(time.Minute) },
			map[string]string{"incident:INC-1:1/ops/slack": ""}},
		{"the second once the first is recorded, with its thread", func(t *testing.T, c map[string]store.Claimed) {
			record(t, st, store.Result{ID: c["incident:INC-1:1/ops/slack"].ID, Status: store.StatusSent, ProviderID: "C1/100.1", Thread: "C1/100.1"})
		}, map[string]string{"incident:INC-1:2/ops/slack": "C1/100.1"}},
		{"the thread is the first one's, not a later reply's", func(t *testing.T, c map[string]store.Claimed) {
			record(t, st, store.Result{ID: c["incident:INC-1:2/ops/slack"].ID, Status: store.StatusSent, Thread: "C1/200.2"})
		}, map[string]string{"incident:INC-1:4/ops/slack": "C1/100.1"}},
	}
	claimed := map[string]store.Claimed{}
	for _, s := range steps {
		if s.before != nil {
			s.before(t, claimed)
		}
		got := map[string]string{}
		for _, c := range claim(t, st, serial) {
			got[c.Key] = c.Thread
			claimed[c.Key] = c
			if c.IncidentID != "" && (c.IncidentTitle != "Referrals down" || c.IncidentSeverity != "major" || c.IncidentStatus != "investigating") {
				t.Errorf("%s: %s claimed without the incident's state: %+v", s.name, c.Key, c)
			}
		}
		if len(got) != len(s.want) || (len(got) > 0 && !reflect.DeepEqual(got, s.want)) {
			t.Errorf("%s: claimed %v, want %v", s.name, got, s.want)
		}
	}
}

func TestStore_Record(t *testing.T) {
	tests := []struct {
		name   string
		result store.Result
		// want, read back from the log
		status, reason, detail, provider string
		attempts, segments               int
		next                             time.Time
		sent                             bool
	}{
		{"sent", store.Result{Status: store.StatusSent, ProviderID: "SM1", Segments: 3, Detail: "queued"},
			store.StatusSent, "", "queued", "SM1", 1, 3, time.Time{}, true},
		{"retry later", store.Result{Status: store.StatusQueued, Reason: "server", Detail: "503", NextAt: t0.Add(time.Minute)},
			store.StatusQueued, "server", "503", "", 1, 0, t0.Add(time.Minute), false},
		{"requeued without spending the attempt", store.Result{Status: store.StatusQueued, Reason: "auth", NextAt: t0.Add(time.Minute), Uncount: true},
			store.StatusQueued, "auth", "", "", 0, 0, t0.Add(time.Minute), false},
		{"failed", store.Result{Status: store.StatusFailed, Reason: "bad_address", Detail: "21211"},
			store.StatusFailed, "bad_address", "21211", "", 1, 0, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(t0)
			st, _ := open(t, clk)
			enqueue(t, st, "send:1", delivery("a"))
			c := claim(t, st, store.ClaimOptions{})
			tt.result.ID = c[0].ID
			record(t, st, tt.result)
			r := rows(t, st)["send:1/a/sms"]
			if r.Status != tt.status || r.Reason != tt.reason || r.Detail != tt.detail || r.ProviderID != tt.provider ||
				r.Attempts != tt.attempts || r.ProviderSegments != tt.segments || !r.NextAttempt.Equal(tt.next) || r.SentAt.IsZero() == tt.sent {
				t.Errorf("row = %+v", r)
			}
			ev, err := st.Events(context.Background(), r.ID)
			if err != nil || len(ev) != 1 || ev[0].Status != tt.status || ev[0].Reason != tt.reason || !ev[0].At.Equal(t0) {
				t.Errorf("events = %+v, %v; want one %s event", ev, err, tt.status)
			}
		})
	}
}

func TestStore_Record_IgnoresRowsNotSending(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"), delivery("b"))
	c := claim(t, st, store.ClaimOptions{Lease: time.Minute})
	a, b := c[0].ID, c[1].ID
	// a is recorded; b's lease runs out and a restart queues it again.
	record(t, st, store.Result{ID: a, Status: store.StatusSent, ProviderID: "SM-a"})
	clk.Add(2 * time.Minute)
	if rec, err := st.ReleaseOrphans(context.Background(), store.Orphans{Channel: "sms", Resend: true}); err != nil || rec.InDoubt != 1 {
		t.Fatalf("ReleaseOrphans = %+v, %v", rec, err)
	}
	before := rows(t, st)
	// Late results from the first worker: both must be ignored.
	record(t, st,
		store.Result{ID: a, Status: store.StatusFailed, Reason: "bad_address", OptOut: true},
		store.Result{ID: b, Status: store.StatusSent, ProviderID: "SM-b", Thread: "x"},
		store.Result{ID: 999, Status: store.StatusSent})
	after := rows(t, st)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("a late Record changed rows:\nbefore %+v\nafter  %+v", before, after)
	}
	for _, id := range []int64{a, b} {
		ev, _ := st.Events(context.Background(), id)
		if len(ev) != 1 {
			t.Errorf("delivery %d: %d events, want 1 (the late result adds none)", id, len(ev))
		}
	}
}

func TestStore_Record_OptOut(t *testing.T) {
	clk := newClock(t0)
	st, _ := open(t, clk)
	enqueue(t, st, "send:1", delivery("a"))
	c := claim(t, st, store.ClaimOptions{})
	record(t, st, store.Result{ID: c[0].ID, Status: store.StatusFailed, Reason: "opted_out", OptOut: true})
	var got map[string]bool
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		var err error
		got, err = tx.OptOuts()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"sms:+4474000000a": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("OptOuts = %v, want %v", got, want)
	}
}
