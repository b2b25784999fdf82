package dispatch

import (
	"context"
	"slices"
	"testing"

	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// reached lists "subscriber/rule/channel" for every earlier delivery about
// the incident that counts as having reached someone.
func reached(tb testing.TB, st *store.Store, incidentID string) []string {
	tb.Helper()
	var out []string
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		return tx.EachReached(incidentID, 0, func(r store.Reached) error {
			out = append(out, r.SubscriberID+"/"+r.Rule+"/"+r.Channel)
			return nil
		})
	})
	if err != nil {
		tb.Fatalf("EachReached: %v", err)
	}
	return out
}

// TestPlanner_Plan_RecordsRule: each delivery records the rule of the
// target that planned it, and the first target's rule wins a subscriber ×
// channel reached through two.
func TestPlanner_Plan_RecordsRule(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"), person("bob"))
	inc := incident(t, st, clk.Now())
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	plan(t, p, st, Request{Key: "incident:" + inc.ID + ":1", Kind: "incident", Name: "open", Incident: inc, Targets: []Target{
		{Rule: "clinicians-sms", Audience: "clinicians", Channels: []string{"sms"}, Event: templates.EventAlert},
		{Rule: "wales-all", Audience: "wales", Channels: []string{"sms", "email"}, Event: templates.EventAlert},
	}})
	got := reached(t, st, inc.ID)
	want := []string{"ann/clinicians-sms/sms", "ann/wales-all/email", "bob/clinicians-sms/sms", "bob/wales-all/email"}
	if !slices.Equal(got, want) {
		t.Errorf("rules recorded: %v, want %v", got, want)
	}
}
