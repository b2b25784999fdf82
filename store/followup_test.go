package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/crier-dev/crier/store"
)

// TestTx_EachReached_Statuses: an incident's follow-ups count the
// deliveries that reached (or are on their way to) someone on a rule, and
// nothing else: not failed ones, not other suppressions, not other
// incidents, not deliveries without a rule, not the trigger being planned.
func TestTx_EachReached_Statuses(t *testing.T) {
	clk := newClock(t0)
	st, path := open(t, clk)
	on := func(rule, incident string) func(*store.NewDelivery) {
		return func(d *store.NewDelivery) { d.Rule, d.IncidentID = rule, incident }
	}
	status := func(s, reason string) func(*store.NewDelivery) {
		return func(d *store.NewDelivery) { d.Status, d.Reason = s, reason }
	}
	first := enqueue(t, st, "incident:INC-1:1",
		delivery("a-queued", on("r1", "INC-1")),
		delivery("b-sent", on("r1", "INC-1")),
		delivery("c-delivered", on("r1", "INC-1")),
		delivery("d-unknown", on("r1", "INC-1")),
		delivery("e-expired", on("r1", "INC-1")),
		delivery("f-failed", on("r1", "INC-1")),
		delivery("g-capped", on("r1", "INC-1"), status(store.StatusSuppressed, "capped")),
		delivery("h-opted-out", on("r1", "INC-1"), status(store.StatusSuppressed, "opted_out")),
		delivery("i-other-incident", on("r1", "INC-2")),
		delivery("j-no-rule", on("", "INC-1")),
		delivery("k-second-rule", on("r2", "INC-1")),
		delivery("l-sending", on("r1", "INC-1")),
	)
	// The statuses the dispatcher and receipts would have written.
	set := map[string]string{"b-sent": "sent", "c-delivered": "delivered", "d-unknown": "unknown", "e-expired": "expired", "f-failed": "failed", "l-sending": "sending"}
	for id, s := range set {
		rawExec(t, path, `UPDATE deliveries SET status=? WHERE subscriber_id=?`, s, id)
	}
	second := enqueue(t, st, "incident:INC-1:2", delivery("m-this-trigger", on("r1", "INC-1")))

	read := func(except int64) []string {
		var got []string
		err := st.Write(context.Background(), func(tx *store.Tx) error {
			return tx.EachReached("INC-1", except, func(r store.Reached) error {
				got = append(got, r.SubscriberID+"/"+r.Rule+"/"+r.Channel+"/"+r.Kind)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := "a-queued/r1/sms/sms b-sent/r1/sms/sms c-delivered/r1/sms/sms d-unknown/r1/sms/sms e-expired/r1/sms/sms " +
		"g-capped/r1/sms/sms k-second-rule/r2/sms/sms l-sending/r1/sms/sms"
	if got := strings.Join(read(second), " "); got != want {
		t.Errorf("reached, leaving out the trigger being planned:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(read(first), " "); got != "m-this-trigger/r1/sms/sms" {
		t.Errorf("reached, leaving out the first trigger: %s", got)
	}
}
