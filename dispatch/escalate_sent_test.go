package dispatch

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/incidents"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// escWorld is one clinician (dr-a) and one deputy (dep-1) with a planner
// that knows the deputies' audience and rules, and channels that accept
// everything.
type escWorld struct {
	t       *testing.T
	clk     *fakeClock
	st      *store.Store
	p       *Planner
	esc     *Escalator
	disp    *Dispatcher
	sms, em *testChannel
}

const deputyPhone = "+447400123499"

func newEscWorld(t *testing.T, at time.Time, rules map[string]ChannelRules, clinician subscribers.Subscriber) *escWorld {
	t.Helper()
	w := &escWorld{t: t, clk: newClock(at)}
	w.st, _ = openStore(t, w.clk)
	addSubscribers(t, w.st, clinician, person("dep-1", func(s *subscribers.Subscriber) { s.Roles = []string{"deputy"}; s.Phone = deputyPhone }))
	auds := append(slices.Clone(testAudiences), Audience{Name: "deputies", Selector: subscribers.Selector{Roles: []string{"deputy"}}})
	w.p = NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: auds, Now: w.clk.Now, Rules: rules,
		Acks: NewAckSigner(testAckSecret, 72*time.Hour, "https://crier.example.org")})
	w.esc = NewEscalator(w.st, w.p, EscalatorOptions{})
	w.sms, w.em = newTestChannel("sms", channels.KindSMS, nil), newTestChannel("email", channels.KindEmail, nil)
	w.disp = newDispatcher(w.st, w.clk, RetryPolicy{}, w.sms, w.em)
	return w
}

func (w *escWorld) tick() TickResult {
	w.t.Helper()
	res, err := w.esc.Tick(context.Background(), w.clk.Now())
	if err != nil {
		w.t.Fatalf("Tick: %v", err)
	}
	return res
}

// deputySMS is the text of every SMS the deputy was sent.
func (w *escWorld) deputySMS() []string {
	var out []string
	for _, m := range w.sms.messages() {
		if m.Address == deputyPhone {
			out = append(out, m.Text)
		}
	}
	return out
}

// TestEscalator_Tick_DeputyQuoteIsOfficialOnly: an OFFICIAL-SENSITIVE
// alert asked by email only (the email channel cleared for it) climbs an
// SMS ladder and ends with the deputy told by SMS too. The deputy's SMS
// never carries the sensitive summary the email did: it quotes the SMS
// rung (whose text had it withheld), and when there is no such delivery
// (no phone, so no rung) it points to the delivery log instead.
func TestEscalator_Tick_DeputyQuoteIsOfficialOnly(t *testing.T) {
	const secret = "RANSOMDEMAND5M"
	cases := []struct {
		name      string
		phone     string
		wantQuote bool
	}{
		{"quotes the SMS rung", "+447400123456", true},
		{"no cleared delivery to quote", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newEscWorld(t, t0, map[string]ChannelRules{"email": {MaxMarking: incidents.OfficialSensitive}},
				person("dr-a", func(s *subscribers.Subscriber) { s.Phone = tc.phone }))
			inc, err := incidents.Open(incidents.Change{Title: "Helpline clinical system down", Severity: "critical", Marking: "OFFICIAL-SENSITIVE",
				Summary: "Attackers demand payment " + secret + "; do not share.", Impacts: []incidents.Impact{incidentsImpact("wales")}}, t0)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
				t.Fatal(err)
			}
			plan(t, w.p, w.st, Request{Key: "incident:" + inc.ID + ":1", Kind: "incident", Name: "open", Incident: inc, Critical: true,
				Targets: []Target{{Audience: "clinicians", Channels: []string{"email"}, Event: templates.EventAlert}},
				Ack:     &AckPolicy{Within: 15 * time.Minute, Ladder: []string{"sms"}, Deputy: "deputies"}})
			drain(t, w.disp, w.clk)
			if ems := w.em.messages(); len(ems) != 1 || !strings.Contains(ems[0].Text, secret) {
				t.Fatalf("the alert email should carry the sensitive summary it is cleared for: %d emails", len(ems))
			}
			deputies := 0
			for i := 0; i < 3 && deputies == 0; i++ {
				w.clk.Add(15 * time.Minute)
				if res := w.tick(); res.Rungs+res.Deputies > 0 {
					deputies += res.Deputies
					drain(t, w.disp, w.clk)
				}
			}
			got := w.deputySMS()
			if deputies != 1 || len(got) != 1 {
				t.Fatalf("deputy told %d times, %d SMS to the deputy; want 1 and 1", deputies, len(got))
			}
			body := got[0]
			if strings.Contains(body, secret) {
				t.Errorf("the deputy's SMS carries OFFICIAL-SENSITIVE text %q:\n%s", secret, body)
			}
			if !strings.Contains(body, "Not acknowledged by: Person dr-a") {
				t.Errorf("the deputy's SMS does not name dr-a:\n%s", body)
			}
			quoted := strings.Contains(body, "The message they were sent:\nCRITICAL "+inc.ID)
			pointed := strings.Contains(body, "see the delivery log (crier log --trigger incident:"+inc.ID+":1)")
			if quoted != tc.wantQuote || pointed == tc.wantQuote {
				t.Errorf("quoted the SMS rung %v, pointed to the log %v; want quoted %v:\n%s", quoted, pointed, tc.wantQuote, body)
			}
		})
	}
}

// TestEscalator_Tick_ClockStartsWhenSent: a non-critical alert planned at
// 23:00, in dr-a's quiet hours (22:00-07:00), is held until 07:00. Nothing
// escalates while it waits, however long past the policy's 15 minutes;
// the email rung comes 15 minutes after the SMS was sent, and the deputy
// 15 minutes after the rung was.
func TestEscalator_Tick_ClockStartsWhenSent(t *testing.T) {
	night := time.Date(2026, 1, 15, 23, 0, 0, 0, time.UTC) // Europe/London is UTC in January
	morning := time.Date(2026, 1, 16, 7, 0, 0, 0, time.UTC)
	w := newEscWorld(t, night, nil, person("dr-a", func(s *subscribers.Subscriber) {
		s.QuietHours = &subscribers.QuietHours{Start: "22:00", End: "07:00"}
	}))
	inc := incident(t, w.st, night)
	out := plan(t, w.p, w.st, Request{Key: "incident:" + inc.ID + ":1", Kind: "incident", Name: "open", Incident: inc,
		Targets: []Target{{Audience: "clinicians", Channels: []string{"sms"}, Event: templates.EventAlert}},
		Ack:     &AckPolicy{Within: 15 * time.Minute, Ladder: []string{"email"}, Deputy: "deputies"}})
	chain := func() map[string]store.AckDelivery {
		dels, err := w.st.AckDeliveries(context.Background(), out.TriggerID)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]store.AckDelivery{}
		for _, d := range dels {
			m[d.Channel] = d
		}
		return m
	}
	steps := []struct {
		at             time.Time
		rungs, deputy  int
		wantSMSSentNow bool
	}{
		{night, 0, 0, false},
		{night.Add(15 * time.Minute), 0, 0, false},
		{morning.Add(-time.Minute), 0, 0, false},
		{morning, 0, 0, true},
		{morning.Add(15*time.Minute - time.Second), 0, 0, false},
		{morning.Add(15 * time.Minute), 1, 0, false},
		{morning.Add(30*time.Minute - time.Second), 0, 0, false},
		{morning.Add(30 * time.Minute), 0, 1, false},
	}
	for _, s := range steps {
		w.clk.Set(s.at)
		if s.at.Equal(night) || s.at.Equal(morning) {
			drain(t, w.disp, w.clk)
		}
		sms := chain()["sms"]
		if s.wantSMSSentNow && !sms.SentAt.Equal(s.at) {
			t.Fatalf("%s: the SMS was not sent when quiet hours ended: %+v", s.at.Format("15:04:05"), sms)
		}
		if s.at.Before(morning) && sms.Status != store.StatusQueued {
			t.Fatalf("%s: the SMS is %s during quiet hours, want queued", s.at.Format("15:04:05"), sms.Status)
		}
		res := w.tick()
		if res.Rungs != s.rungs || res.Deputies != s.deputy {
			t.Errorf("%s: tick %+v, want %d rungs and %d deputies", s.at.Format("15:04:05"), res, s.rungs, s.deputy)
		}
		if res.Rungs+res.Deputies > 0 {
			drain(t, w.disp, w.clk) // what the tick planned goes out now
		}
	}
	if em := chain()["email"]; em.Escalation != "escalated: not acknowledged within 15m" || !em.CreatedAt.Equal(morning.Add(15*time.Minute)) {
		t.Errorf("email rung %+v, want planned at 07:15 for want of an acknowledgement", em)
	}
	if got := w.deputySMS(); len(got) != 1 || !strings.Contains(got[0], "Acknowledgement was due by 07:15 UTC on 16 Jan.") {
		t.Errorf("the deputy's SMS should name the deadline that ran from the sending (07:15): %q", got)
	}
}

// TestEscalator_Tick_BrokenChannelDoesNotStallTheLadder: a critical alert
// whose SMS channel keeps failing (queued again and again for retries)
// still escalates 15 minutes after it was planned: only a delivery held
// back on purpose (quiet hours) stops the clock.
func TestEscalator_Tick_BrokenChannelDoesNotStallTheLadder(t *testing.T) {
	at := time.Date(2026, 1, 15, 14, 0, 0, 0, time.UTC)
	w := newEscWorld(t, at, nil, person("dr-a"))
	inc := incident(t, w.st, at)
	out := plan(t, w.p, w.st, Request{Key: "incident:" + inc.ID + ":1", Kind: "incident", Name: "open", Incident: inc, Critical: true,
		Targets: []Target{{Audience: "clinicians", Channels: []string{"sms"}, Event: templates.EventAlert}},
		Ack:     &AckPolicy{Within: 15 * time.Minute, Ladder: []string{"email"}}})
	// The SMS provider is down: the delivery is tried and queued for a retry.
	c, err := w.st.Claim(context.Background(), store.ClaimOptions{Channel: "sms", Limit: 1, Lease: time.Minute})
	if err != nil || len(c) != 1 {
		t.Fatalf("Claim: %d, %v", len(c), err)
	}
	if err := w.st.Record(context.Background(), []store.Result{{ID: c[0].ID, Status: store.StatusQueued, Reason: "server", NextAt: at.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	w.clk.Set(at.Add(15 * time.Minute))
	if res := w.tick(); res.Rungs != 1 {
		t.Fatalf("tick %+v at 14:15 with the SMS still failing, want the email rung planned", res)
	}
	dels, _ := w.st.AckDeliveries(context.Background(), out.TriggerID)
	if len(dels) != 2 || dels[1].Channel != "email" {
		t.Fatalf("deliveries %+v, want the SMS and its email rung", dels)
	}
}
