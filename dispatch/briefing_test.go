package dispatch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

func briefingRequest(key string) Request {
	return Request{Key: key, Kind: "briefing", Name: "ministers-daily", BriefingName: "Ministers' situation report",
		Targets: []Target{{Audience: "everyone", Channels: []string{"email"}, Event: templates.EventBriefing}}}
}

func openIncident(t *testing.T, st *store.Store, c incidents.Change, now time.Time) *incidents.Incident {
	t.Helper()
	inc, err := incidents.Open(c, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
		t.Fatal(err)
	}
	return inc
}

func changeIncident(t *testing.T, st *store.Store, id, kind string, c incidents.Change, now time.Time) {
	t.Helper()
	err := st.Write(context.Background(), func(tx *store.Tx) error {
		inc, err := tx.Incident(id)
		if err != nil {
			return err
		}
		u, err := inc.Apply(kind, c, now)
		if err != nil {
			return err
		}
		return tx.SaveIncidentUpdate(inc, u)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPlanner_Plan_BriefingSaysWhatChanged: two briefings on a fake clock.
// The second tells a recipient who had the first only what changed since
// (new entries, the new incident, the one resolved in between), and tells a
// recipient added in between everything.
func TestPlanner_Plan_BriefingSaysWhatChanged(t *testing.T) {
	clk := newClock(time.Date(2026, 1, 14, 15, 0, 0, 0, time.UTC))
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("old-minister", func(s *subscribers.Subscriber) { s.Roles = []string{"minister"} }))
	p := newPlanner(clk, loadTemplates(t, nil), RetryPolicy{})
	email := newTestChannel("email", channels.KindEmail, nil)
	d := newDispatcher(st, clk, RetryPolicy{}, email)

	a := openIncident(t, st, incidents.Change{Title: "Referrals down", Severity: "critical", Text: "OPENINGENTRY referrals offline",
		Impacts: []incidents.Impact{incidentsImpact("wales")}}, clk.Now())
	c := openIncident(t, st, incidents.Change{Title: "Booking slow", Severity: "minor", Text: "BOOKINGENTRY slow",
		Impacts: []incidents.Impact{{Service: "booking", Nation: "england", Status: incidents.Degraded}}}, clk.Now())

	clk.Set(time.Date(2026, 1, 15, 8, 0, 0, 0, time.UTC))
	first := plan(t, p, st, briefingRequest("briefing:ministers-daily:1"))
	drain(t, d, clk, first.TriggerID)
	if got := logRows(t, st, "briefing:ministers-daily:1")["old-minister/email"]; got.Status != store.StatusSent ||
		!strings.Contains(got.Text, "OPENINGENTRY") {
		t.Fatalf("first briefing: status %s, want sent with the full picture:\n%s", got.Status, got.Text)
	}

	clk.Set(time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC))
	changeIncident(t, st, a.ID, "update", incidents.Change{Text: "LATERENTRY supplier isolated systems",
		Impacts: []incidents.Impact{{Service: "referrals", Nation: "wales", Status: incidents.Degraded, Workaround: "phone the duty clinician"}}}, clk.Now())
	changeIncident(t, st, c.ID, "resolve", incidents.Change{Text: "BOOKINGFIXED"}, clk.Now())
	openIncident(t, st, incidents.Change{Title: "Prescriptions NEWINCIDENT", Severity: "major", Text: "NEWINCIDENTENTRY",
		Impacts: []incidents.Impact{{Service: "prescriptions", Nation: "scotland", Status: incidents.Outage, Workaround: "paper"}}}, clk.Now())
	addSubscribers(t, st, person("new-minister", func(s *subscribers.Subscriber) { s.Roles = []string{"minister"} }))

	clk.Set(time.Date(2026, 1, 15, 17, 0, 0, 0, time.UTC))
	second := plan(t, p, st, briefingRequest("briefing:ministers-daily:2"))
	drain(t, d, clk, second.TriggerID)
	rows := logRows(t, st, "briefing:ministers-daily:2")
	old, fresh := rows["old-minister/email"].Text, rows["new-minister/email"].Text

	for _, want := range []string{"LATERENTRY", "NEWINCIDENT", "BOOKINGFIXED", "Booking slow", "08:00"} {
		if !strings.Contains(old, want) {
			t.Errorf("existing recipient's second briefing lacks %q:\n%s", want, old)
		}
	}
	for _, gone := range []string{"OPENINGENTRY", "BOOKINGENTRY"} {
		if strings.Contains(old, gone) {
			t.Errorf("existing recipient's second briefing repeats %q from before their last briefing:\n%s", gone, old)
		}
	}
	for _, want := range []string{"OPENINGENTRY", "LATERENTRY", "NEWINCIDENTENTRY", "first briefing"} {
		if !strings.Contains(fresh, want) {
			t.Errorf("new recipient's briefing lacks %q (they get the full picture):\n%s", want, fresh)
		}
	}
}
