package dispatch

import (
	"context"
	"fmt"
	"maps"
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

// followWorld is an incident told to clinicians in the nations it
// affects, ready for its follow-ups: ann (Wales, English), cai (Wales,
// Welsh), dee (England) and eve (Scotland); the incident is a referrals
// outage in Wales and degraded prescriptions in England.
type followWorld struct {
	t   *testing.T
	clk *fakeClock
	st  *store.Store
	p   *Planner
	inc *incidents.Incident
	seq int
}

// followAudiences add the clinicians of the nations an incident affects.
var followAudiences = append(slices.Clone(testAudiences),
	Audience{Name: "affected", Selector: subscribers.Selector{Roles: []string{"clinician"}, IncidentNations: true}})

func newFollowWorld(t *testing.T, opts ...func(*PlannerOptions)) *followWorld {
	t.Helper()
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, followPeople()...)
	o := PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: followAudiences, Now: clk.Now}
	for _, f := range opts {
		f(&o)
	}
	w := &followWorld{t: t, clk: clk, st: st, p: NewPlanner(o)}
	inc, err := incidents.Open(incidents.Change{Title: "Helpline referrals down", Severity: "critical", Impacts: []incidents.Impact{
		{Service: "Referrals", Nation: "wales", Status: incidents.Outage, Workaround: "Phone the duty clinician."},
		{Service: "Prescriptions", Nation: "england", Status: incidents.Degraded, Workaround: "Use paper FP10."},
	}}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
		t.Fatal(err)
	}
	w.inc, w.seq = inc, 1
	w.plan(smsRule("open"))
	return w
}

// followPeople are the world's subscribers, mods applied by id.
func followPeople(mods ...func(*subscribers.Subscriber)) []subscribers.Subscriber {
	list := []subscribers.Subscriber{
		person("ann"),
		person("cai", func(s *subscribers.Subscriber) { s.Locale = "cy" }),
		person("dee", func(s *subscribers.Subscriber) { s.Nations = []string{"england"} }),
		person("eve", func(s *subscribers.Subscriber) { s.Nations = []string{"scotland"} }),
	}
	for i := range list {
		for _, m := range mods {
			m(&list[i])
		}
	}
	return list
}

// smsRule is the clinicians' SMS rule as incidentRequest builds it for
// an event: it follows the incident up on update and resolve.
func smsRule(event string) Target {
	t := Target{Rule: "clinicians-sms", Audience: "affected", Channels: []string{"sms"}, Event: map[string]string{
		"open": templates.EventAlert, "update": templates.EventUpdate, "resolve": templates.EventResolve}[event]}
	t.FollowUp = event != "open"
	return t
}

// change applies an update (or the resolution) to the incident and stores it.
func (w *followWorld) change(kind string, c incidents.Change) {
	w.t.Helper()
	w.clk.Add(time.Minute)
	u, err := w.inc.Apply(kind, c, w.clk.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.st.Write(context.Background(), func(tx *store.Tx) error { return tx.SaveIncidentUpdate(w.inc, u) }); err != nil {
		w.t.Fatal(err)
	}
	w.seq = u.Seq
}

// request is the incident's latest event with targets.
func (w *followWorld) request(targets ...Target) Request {
	return Request{Key: fmt.Sprintf("incident:%s:%d", w.inc.ID, w.seq), Kind: "incident", Name: w.inc.Timeline[w.seq-1].Kind,
		Incident: w.inc, Critical: w.inc.Severity == incidents.Critical, Targets: targets}
}

// plan plans the incident's latest event and returns its rows.
func (w *followWorld) plan(targets ...Target) map[string]store.LogEntry {
	w.t.Helper()
	req := w.request(targets...)
	if err := w.st.Write(context.Background(), func(tx *store.Tx) error {
		_, err := w.p.PlanTx(tx, req)
		return err
	}); err != nil {
		w.t.Fatalf("PlanTx(%s): %v", req.Key, err)
	}
	return logRows(w.t, w.st, req.Key)
}

// restoreWales is the update that brings referrals back in Wales.
func restoreWales() incidents.Change {
	return incidents.Change{Text: "Referrals are back in Wales.", Impacts: []incidents.Impact{{Service: "Referrals", Nation: "wales", Status: incidents.Restored}}}
}

// statuses sums up rows as "subscriber/channel": "status reason".
func statuses(rows map[string]store.LogEntry) map[string]string {
	out := map[string]string{}
	for k, e := range rows {
		out[k] = strings.TrimSpace(e.Status + " " + e.Reason)
	}
	return out
}

func wantStatuses(t *testing.T, rows map[string]store.LogEntry, want map[string]string) {
	t.Helper()
	if got := statuses(rows); !maps.Equal(got, want) {
		t.Errorf("rows:\n got %v\nwant %v", got, want)
	}
}

// TestPlanner_FollowUp_MatrixMovedOn: an update that restores Wales
// still reaches the clinicians in Wales who were told of the outage (in
// their own language), as well as those the matrix selects now; someone
// never told is not added.
func TestPlanner_FollowUp_MatrixMovedOn(t *testing.T) {
	w := newFollowWorld(t)
	w.change("update", restoreWales())
	rows := w.plan(smsRule("update"))
	wantStatuses(t, rows, map[string]string{"ann/sms": "queued", "cai/sms": "queued", "dee/sms": "queued"})
	if d := rows["ann/sms"].Detail; !strings.Contains(d, "told of INC-1 before by alert rule clinicians-sms") {
		t.Errorf("ann's detail %q does not say why she is told", d)
	}
	if d := rows["dee/sms"].Detail; d != "" {
		t.Errorf("dee is in the matrix now; detail %q, want none", d)
	}
	if txt := rows["cai/sms"].Text; !strings.HasPrefix(txt, "Diweddariad INC-1") {
		t.Errorf("cai reads Welsh; got %q", txt)
	}
	if txt := rows["ann/sms"].Text; !strings.HasPrefix(txt, "Update INC-1") || !strings.Contains(txt, "Restored: Referrals (Wales).") ||
		!strings.Contains(txt, "Wales: no services disrupted.") {
		t.Errorf("ann reads in English what was restored in Wales; got %q", txt)
	}
	if txt := rows["cai/sms"].Text; !strings.Contains(txt, "Adferwyd: Referrals (Cymru).") {
		t.Errorf("cai reads in Welsh what was restored in Wales; got %q", txt)
	}
	if txt := rows["dee/sms"].Text; strings.Contains(txt, "Restored") || !strings.Contains(txt, "Still affected: Prescriptions (England): Degraded.") {
		t.Errorf("dee reads what is still down in England, and nothing of Wales; got %q", txt)
	}

	// The resolution: nobody is in the matrix any more; all three hear it.
	w.change("resolve", incidents.Change{})
	rows = w.plan(smsRule("resolve"))
	wantStatuses(t, rows, map[string]string{"ann/sms": "queued", "cai/sms": "queued", "dee/sms": "queued"})
	if txt := rows["dee/sms"].Text; !strings.HasPrefix(txt, "RESOLVED:") || !strings.Contains(txt, "Restored: Prescriptions (England).") {
		t.Errorf("dee's resolution says what came back in England; got %q", txt)
	}
}

// TestPlanner_FollowUp_OptedOutSince: someone told of the incident who
// has opted out since gets a suppressed row saying so, not the update.
func TestPlanner_FollowUp_OptedOutSince(t *testing.T) {
	w := newFollowWorld(t)
	addSubscribers(t, w.st, followPeople(func(s *subscribers.Subscriber) {
		if s.ID == "ann" {
			s.OptedOut = []string{"sms"}
		}
	})...)
	w.change("update", restoreWales())
	rows := w.plan(smsRule("update"))
	wantStatuses(t, rows, map[string]string{"ann/sms": "suppressed opted_out", "cai/sms": "queued", "dee/sms": "queued"})
	if d := rows["ann/sms"].Detail; !strings.Contains(d, "opted out of sms") || !strings.Contains(d, "told of INC-1 before") {
		t.Errorf("ann's detail %q, want the opt-out and that she was told before", d)
	}
}

// TestPlanner_FollowUp_RuleNotOnEvent: a rule that no longer sends the
// event writes a suppressed row for each person it told, and nothing for
// anyone else.
func TestPlanner_FollowUp_RuleNotOnEvent(t *testing.T) {
	w := newFollowWorld(t)
	w.change("update", restoreWales())
	t1 := smsRule("update")
	t1.Withhold, t1.WithholdDetail = ReasonRuleNotOnEvent, "alert rule clinicians-sms does not send update events (on: open)"
	rows := w.plan(t1)
	wantStatuses(t, rows, map[string]string{"ann/sms": "suppressed rule_not_on_event", "cai/sms": "suppressed rule_not_on_event",
		"dee/sms": "suppressed rule_not_on_event"})
	if d := rows["dee/sms"].Detail; !strings.Contains(d, "does not send update events") || !strings.Contains(d, "told them of INC-1 before") {
		t.Errorf("detail %q, want the rule, the event and that they were told", d)
	}
}

// TestPlanner_FollowUp_WithheldRuleHidesNothing: a withheld rule sorted
// first does not take the channel from a rule that sends on it.
func TestPlanner_FollowUp_WithheldRuleHidesNothing(t *testing.T) {
	w := newFollowWorld(t)
	w.change("update", restoreWales())
	withheld := smsRule("update")
	withheld.Rule, withheld.Withhold, withheld.WithholdDetail = "a-first", ReasonRuleNotOnEvent, "not on update"
	rows := w.plan(withheld, smsRule("update"))
	wantStatuses(t, rows, map[string]string{"ann/sms": "queued", "cai/sms": "queued", "dee/sms": "queued"})
}

// TestPlanner_FollowUp_Downgraded: an incident downgraded below a rule's
// min_severity still reaches the people that rule told (FollowUpOnly),
// and nobody new.
func TestPlanner_FollowUp_Downgraded(t *testing.T) {
	w := newFollowWorld(t)
	w.change("update", incidents.Change{Severity: "minor", Impacts: []incidents.Impact{{Service: "Dispatch", Nation: "scotland", Status: incidents.Outage}}})
	t1 := smsRule("update")
	t1.FollowUpOnly = true
	rows := w.plan(t1)
	wantStatuses(t, rows, map[string]string{"ann/sms": "queued", "cai/sms": "queued", "dee/sms": "queued"})
}

// TestPlanner_FollowUp_NewlyAffected: someone the matrix selects only now
// gets the update too, as an ordinary recipient.
func TestPlanner_FollowUp_NewlyAffected(t *testing.T) {
	w := newFollowWorld(t)
	w.change("update", incidents.Change{Impacts: []incidents.Impact{{Service: "Dispatch", Nation: "scotland", Status: incidents.Outage}}})
	rows := w.plan(smsRule("update"))
	wantStatuses(t, rows, map[string]string{"ann/sms": "queued", "cai/sms": "queued", "dee/sms": "queued", "eve/sms": "queued"})
	if d := rows["eve/sms"].Detail; d != "" {
		t.Errorf("eve is selected by the matrix; detail %q, want none", d)
	}
}

// TestPlanner_FollowUp_Gone: a subscriber removed since, and a rule
// removed from the config since, leave suppressed rows in id order.
func TestPlanner_FollowUp_Gone(t *testing.T) {
	w := newFollowWorld(t)
	// A second rule told everyone by email of an update.
	w.change("update", incidents.Change{Text: "The supplier is restoring from backups."})
	w.plan(smsRule("update"), Target{Rule: "old-rule", Audience: "everyone", Channels: []string{"email"}, Event: templates.EventUpdate})
	err := w.st.Write(context.Background(), func(tx *store.Tx) error {
		_, err := tx.RemoveSubscribersNotIn("config", []string{"ann", "cai", "eve"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w.change("resolve", incidents.Change{})
	rows := w.plan(smsRule("resolve"))
	wantStatuses(t, rows, map[string]string{
		"ann/sms": "queued", "cai/sms": "queued", "dee/sms": "suppressed subscriber_removed",
		"ann/email": "suppressed rule_removed", "cai/email": "suppressed rule_removed", "dee/email": "suppressed subscriber_removed",
		"eve/email": "suppressed rule_removed",
	})
	if d := rows["dee/sms"].Detail; !strings.Contains(d, "dee is no longer a subscriber") {
		t.Errorf("dee's detail %q", d)
	}
	if d := rows["eve/email"].Detail; !strings.Contains(d, "alert rule old-rule") || !strings.Contains(d, "no longer in the config") {
		t.Errorf("eve's detail %q", d)
	}
}

// TestPlanner_Preflight_FollowUps: the pre-flight of a resolution lists
// the people told before who will hear it, and those who will not, why.
func TestPlanner_Preflight_FollowUps(t *testing.T) {
	w := newFollowWorld(t)
	addSubscribers(t, w.st, followPeople(func(s *subscribers.Subscriber) {
		if s.ID == "cai" {
			s.Phone = ""
		}
	})...)
	w.change("update", restoreWales())
	pf, err := w.p.Preflight(context.Background(), w.st, w.request(smsRule("update")), nil)
	if err != nil {
		t.Fatal(err)
	}
	var follow, suppressed []string
	for _, f := range pf.FollowUps {
		follow = append(follow, f.Subscriber+"/"+f.Rule)
	}
	for _, s := range pf.Suppressed {
		suppressed = append(suppressed, fmt.Sprintf("%s/%s/%v", s.Subscriber, s.Reason, s.FollowUp))
	}
	if !slices.Equal(follow, []string{"ann/clinicians-sms"}) || !slices.Equal(suppressed, []string{"cai/no_address/true"}) {
		t.Errorf("follow-ups %v, suppressed %v; want ann told, cai not (no address)", follow, suppressed)
	}
	if pf.Messages != 2 || pf.Channels["sms"].FollowUps != 1 {
		t.Errorf("pre-flight %d messages, %+v; want 2 (ann, dee), 1 a follow-up", pf.Messages, pf.Channels["sms"])
	}
}

// TestPlanner_SMSCut_Pointer: an SMS cut to its channel's segment cap
// points at the email its recipient is sent in the same trigger, else at
// the incident's page, else ends with the ellipsis alone; never at an
// email the recipient does not get.
func TestPlanner_SMSCut_Pointer(t *testing.T) {
	long := incidents.Change{Text: strings.Repeat("The supplier is restoring the clinical system from backups, one region at a time. ", 5)}
	tests := []struct {
		name      string
		dashboard string
		channels  []string
		noEmail   string // this subscriber has no email address
		want      map[string]string
	}{
		{"email sent too", "https://crier.example.org", []string{"sms", "email"}, "",
			map[string]string{"ann": "... full details by email", "cai": "... manylion llawn drwy e-bost"}},
		{"no email, a page", "https://crier.example.org/", []string{"sms"}, "",
			map[string]string{"ann": "... more: crier.example.org/incidents/INC-1", "cai": "... mwy: crier.example.org/incidents/INC-1"}},
		{"email not sent to this one, a page", "http://127.0.0.1:8080", []string{"sms", "email"}, "ann",
			map[string]string{"ann": "... more: http://127.0.0.1:8080/incidents/INC-1", "cai": "... manylion llawn drwy e-bost"}},
		{"no email, no page", "", []string{"sms"}, "",
			map[string]string{"ann": "...", "cai": "..."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newFollowWorld(t, func(o *PlannerOptions) {
				o.DashboardURL = tt.dashboard
				o.Rules = map[string]ChannelRules{"sms": {MaxSegments: 1}}
			})
			addSubscribers(t, w.st, followPeople(func(s *subscribers.Subscriber) {
				if s.ID == tt.noEmail {
					s.Email = ""
				}
			})...)
			w.change("update", long)
			target := smsRule("update")
			target.Channels = tt.channels
			rows := w.plan(target)
			for who, end := range tt.want {
				e := rows[who+"/sms"]
				if e.Segments != 1 || !strings.HasSuffix(e.Text, end) {
					t.Errorf("%s's SMS (%d segments) ends %q, want %q", who, e.Segments, tail(e.Text, 50), end)
				}
				for _, bad := range []string{"email", "e-bost", "more:", "mwy:", "/incidents/"} {
					if !strings.Contains(end, bad) && strings.Contains(e.Text, bad) {
						t.Errorf("%s's SMS has %q, which it should not point at: %q", who, bad, e.Text)
					}
				}
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// TestEscalator_Rung_CarriesRule: a rung carries the rule of the delivery
// it escalates, so someone whose SMS failed but whose email rung reached
// them counts as told by that rule, and hears its follow-ups.
func TestEscalator_Rung_CarriesRule(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("ann"), person("bob"))
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now})
	sms := newTestChannel("sms", channels.KindSMS, func(n int, m channels.Message) (channels.Receipt, error) {
		if strings.HasPrefix(m.Key, "incident:INC-1:1/ann/") {
			return channels.Receipt{}, channels.Permanent(channels.ReasonBadAddress, "21211", errScripted)
		}
		return channels.Receipt{ProviderID: "SM" + m.Key, Status: "accepted"}, nil
	})
	disp := newDispatcher(st, clk, RetryPolicy{}, sms, newTestChannel("email", channels.KindEmail, nil))
	inc := incident(t, st, t0)
	plan(t, p, st, Request{Key: "incident:" + inc.ID + ":1", Kind: "incident", Name: "open", Incident: inc, Critical: true,
		Targets: []Target{{Rule: "clinicians-sms", Audience: "clinicians", Channels: []string{"sms"}, Event: templates.EventAlert}},
		Ack:     &AckPolicy{Within: 15 * time.Minute, Ladder: []string{"email"}}})
	drain(t, disp, clk)
	if _, err := NewEscalator(st, p, EscalatorOptions{}).Tick(context.Background(), clk.Now()); err != nil {
		t.Fatal(err)
	}
	got := reached(t, st, inc.ID)
	want := []string{"ann/clinicians-sms/email", "bob/clinicians-sms/sms"}
	if !slices.Equal(got, want) {
		t.Errorf("reached %v, want %v (ann by her email rung, not her failed SMS)", got, want)
	}
}

// BenchmarkPlan_FollowUp_100k plans an event of an incident whose alert
// told 100,000 clinicians, in the incident's own transaction (PlanTx):
// "follow-ups" is its resolution, when nobody is in the impact matrix any
// more and every delivery is a follow-up found through the one query of
// earlier deliveries; "matrix" is an update that the matrix still sends
// to all of them, without follow-ups, for comparison.
func BenchmarkPlan_FollowUp_100k(b *testing.B) {
	for _, followUp := range []bool{true, false} {
		name := map[bool]string{true: "follow-ups", false: "matrix"}[followUp]
		b.Run(name, func(b *testing.B) { benchFollowUp(b, followUp) })
	}
}

func benchFollowUp(b *testing.B, followUp bool) {
	clk := newClock(t0)
	st, _ := openStore(b, clk)
	benchAudience(b, st, benchSubscribers)
	var impacts []incidents.Impact
	for _, n := range []string{"england", "scotland", "wales", "northern-ireland"} {
		impacts = append(impacts, incidents.Impact{Service: "Referrals", Nation: n, Status: incidents.Outage, Workaround: "Phone the duty clinician."})
	}
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(b, nil), Channels: testChannels, Audiences: followAudiences, Now: clk.Now})
	b.StopTimer()
	for range b.N {
		inc, err := incidents.Open(incidents.Change{Title: "Helpline referrals down", Severity: "critical", Impacts: impacts}, clk.Now())
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Write(context.Background(), func(tx *store.Tx) error { return tx.CreateIncident(inc) }); err != nil {
			b.Fatal(err)
		}
		open := Target{Rule: "clinicians-sms", Audience: "affected", Channels: []string{"sms"}, Event: templates.EventAlert}
		plan(b, p, st, Request{Key: fmt.Sprintf("incident:%s:1", inc.ID), Kind: "incident", Name: "open", Incident: inc, Critical: true, Targets: []Target{open}})
		kind, c := "update", incidents.Change{Text: "The supplier is restoring from backups."}
		if followUp {
			kind, c = "resolve", incidents.Change{}
		}
		u, err := inc.Apply(kind, c, clk.Now())
		if err != nil {
			b.Fatal(err)
		}
		t := Target{Rule: "clinicians-sms", Audience: "affected", Channels: []string{"sms"}, Event: kind, FollowUp: followUp}
		req := Request{Key: fmt.Sprintf("incident:%s:%d", inc.ID, u.Seq), Kind: "incident", Name: kind, Incident: inc, Critical: true, Targets: []Target{t}}
		b.StartTimer()
		start := time.Now()
		var out Outcome
		err = st.Write(context.Background(), func(tx *store.Tx) error {
			if err := tx.SaveIncidentUpdate(inc, u); err != nil {
				return err
			}
			out, err = p.PlanTx(tx, req)
			return err
		})
		elapsed := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if out.Queued != benchSubscribers {
			b.Fatalf("queued %d, want %d", out.Queued, benchSubscribers)
		}
		b.ReportMetric(float64(benchSubscribers)/elapsed.Seconds(), "deliveries/s")
	}
}
