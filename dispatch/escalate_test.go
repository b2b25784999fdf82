package dispatch

import (
	"context"
	"fmt"
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

// ackWorld is four clinicians asked to acknowledge a critical alert by
// SMS within 15 minutes, escalating to email and then to the deputies,
// with a dispatcher that sends everything (channels that accept all).
type ackWorld struct {
	t        *testing.T
	clk      *fakeClock
	st       *store.Store
	p        *Planner
	esc      *Escalator
	disp     *Dispatcher
	signer   *AckSigner
	inc      *incidents.Incident
	out      Outcome
	sms, em  *testChannel
	slackCh  *testChannel
	deputies []string
}

var clinicians = []string{"dr-a", "dr-b", "dr-c", "dr-d"}

// newAckWorld plans the alert; mod changes the policy, people the subscribers.
func newAckWorld(t *testing.T, pol AckPolicy, people ...subscribers.Subscriber) *ackWorld {
	t.Helper()
	w := &ackWorld{t: t, clk: newClock(t0)}
	w.st, _ = openStore(t, w.clk)
	if len(people) == 0 {
		for _, id := range clinicians {
			people = append(people, person(id))
		}
	}
	people = append(people, person("dep-1", func(s *subscribers.Subscriber) { s.Roles = []string{"deputy"}; s.Phone = "+447400123499" }))
	w.deputies = []string{"dep-1"}
	addSubscribers(t, w.st, people...)
	w.signer = NewAckSigner(testAckSecret, 72*time.Hour, "https://crier.example.org")
	auds := append(slices.Clone(testAudiences), Audience{Name: "deputies", Selector: subscribers.Selector{Roles: []string{"deputy"}}})
	w.p = NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: auds, Now: w.clk.Now, Acks: w.signer})
	w.esc = NewEscalator(w.st, w.p, EscalatorOptions{})
	w.sms, w.em, w.slackCh = newTestChannel("sms", channels.KindSMS, nil), newTestChannel("email", channels.KindEmail, nil), newTestChannel("slack", channels.KindSlack, nil)
	w.disp = newDispatcher(w.st, w.clk, RetryPolicy{}, w.sms, w.em, w.slackCh)
	w.inc = incident(t, w.st, t0)
	w.out = plan(t, w.p, w.st, Request{Key: "incident:" + w.inc.ID + ":1", Kind: "incident", Name: "open", Incident: w.inc, Critical: true,
		Targets: []Target{{Audience: "clinicians", Channels: []string{"sms"}, Event: templates.EventAlert}}, Ack: &pol})
	w.drain()
	return w
}

func (w *ackWorld) drain() { w.t.Helper(); drain(w.t, w.disp, w.clk) }

// tick runs the escalator at the fake clock's time.
func (w *ackWorld) tick() TickResult {
	w.t.Helper()
	res, err := w.esc.Tick(context.Background(), w.clk.Now())
	if err != nil {
		w.t.Fatalf("Tick: %v", err)
	}
	return res
}

// chain returns every delivery of the alert's trigger, keyed subscriber/channel.
func (w *ackWorld) chain() map[string]store.AckDelivery {
	w.t.Helper()
	dels, err := w.st.AckDeliveries(context.Background(), w.out.TriggerID)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]store.AckDelivery{}
	for _, d := range dels {
		out[d.SubscriberID+"/"+d.Channel] = d
	}
	return out
}

func (w *ackWorld) ack(sub, via string) {
	w.t.Helper()
	if _, err := w.st.RecordAck(context.Background(), w.chain()[sub+"/sms"].ID, via, ""); err != nil {
		w.t.Fatal(err)
	}
}

func (w *ackWorld) policy() store.AckPolicy {
	w.t.Helper()
	pols, err := w.st.AckPolicies(context.Background(), w.inc.ID)
	if err != nil || len(pols) != 1 {
		w.t.Fatalf("AckPolicies: %v %v", pols, err)
	}
	return pols[0]
}

// deputyDeliveries lists the deputy message's deliveries, if planned.
func (w *ackWorld) deputyDeliveries() []store.AckDelivery {
	w.t.Helper()
	tr, ok, err := w.st.TriggerByKey(context.Background(), store.DeputyKey(w.out.Key))
	if err != nil || !ok {
		return nil
	}
	dels, err := w.st.AckDeliveries(context.Background(), tr.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return dels
}

func events(t *testing.T, st *store.Store, id int64) []store.Event {
	t.Helper()
	ev, err := st.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func hasEvent(evs []store.Event, status, reason, detail string) bool {
	return slices.ContainsFunc(evs, func(e store.Event) bool {
		return e.Status == status && e.Reason == reason && strings.Contains(e.Detail, detail)
	})
}

var ladderPolicy = AckPolicy{Within: 15 * time.Minute, Ladder: []string{"email"}, Deputy: "deputies"}

func TestEscalator_Tick_TimeoutClimbsLadderThenDeputy(t *testing.T) {
	w := newAckWorld(t, ladderPolicy)
	w.clk.Add(14*time.Minute + 59*time.Second)
	if res := w.tick(); res.Rungs != 0 || res.Deputies != 0 {
		t.Fatalf("before the deadline: %+v", res)
	}
	w.clk.Add(time.Second)
	if res := w.tick(); res.Rungs != 4 {
		t.Fatalf("at the deadline: %+v, want 4 rungs", res)
	}
	if res := w.tick(); res.Rungs != 0 || res.Deputies != 0 {
		t.Errorf("a second tick at the same time planned again: %+v", res)
	}
	c := w.chain()
	for _, id := range clinicians {
		sms, em := c[id+"/sms"], c[id+"/email"]
		if em.ID == 0 || em.EscalatesID != sms.ID || em.Status != store.StatusQueued {
			t.Fatalf("%s: email rung %+v does not escalate the SMS %d", id, em, sms.ID)
		}
		if em.Escalation != "escalated: not acknowledged within 15m" {
			t.Errorf("%s: rung's reason %q", id, em.Escalation)
		}
		if !hasEvent(events(t, w.st, sms.ID), "escalated", "escalated", "escalated to email") {
			t.Errorf("%s: the SMS has no event saying it was escalated: %+v", id, events(t, w.st, sms.ID))
		}
	}
	w.drain()
	if n := len(w.em.messages()); n != 4 {
		t.Fatalf("the email channel got %d messages, want 4", n)
	}
	w.clk.Add(14 * time.Minute)
	if res := w.tick(); res.Deputies != 0 {
		t.Fatalf("deputy told before the email rung's own 15 minutes: %+v", res)
	}
	w.clk.Add(time.Minute)
	res := w.tick()
	if res.Deputies != 1 || res.Escalated != 1 {
		t.Fatalf("after the email rung: %+v, want the deputy told and the policy escalated", res)
	}
	if res := w.tick(); res.Deputies != 0 || res.Policies != 0 {
		t.Errorf("tick after escalation: %+v, want nothing", res)
	}
	dd := w.deputyDeliveries()
	if len(dd) == 0 {
		t.Fatal("no deputy deliveries")
	}
	var smsOne *store.AckDelivery
	for i := range dd {
		if dd[i].SubscriberID != "dep-1" {
			t.Errorf("deputy message to %s", dd[i].SubscriberID)
		}
		if dd[i].EscalatesID == 0 {
			t.Errorf("deputy delivery %d is not linked to the rung it escalates", dd[i].ID)
		}
		if dd[i].Channel == "sms" {
			smsOne = &dd[i]
		}
	}
	if smsOne == nil || smsOne.Status != store.StatusQueued || len(dd) != 2 {
		t.Fatalf("the deputy should get the alert's channel and the ladder's (SMS and email): %+v", dd)
	}
	w.drain()
	var body string
	for _, m := range w.sms.messages() {
		if m.Address == "+447400123499" {
			body = m.Text
		}
	}
	for _, want := range []string{"Not acknowledged", "dr-a", "dr-d", "0 of 4", "Helpline referrals down"} {
		if !strings.Contains(body, want) {
			t.Errorf("the deputies' message lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "/ack/") || strings.Contains(body, "Reply ACK") {
		t.Errorf("the deputies' message passes on someone's acknowledgement request:\n%s", body)
	}
	if p := w.policy(); p.State != store.AckEscalated {
		t.Errorf("policy state %s, want escalated", p.State)
	}
}

func TestEscalator_Tick_UndeliveredEscalatesAtOnce(t *testing.T) {
	w := newAckWorld(t, ladderPolicy)
	sms := w.chain()["dr-c/sms"]
	if _, err := w.st.ApplyReceipt(context.Background(), sms.ID, "", "undelivered", "30006"); err != nil {
		t.Fatal(err)
	}
	w.clk.Add(time.Minute)
	if res := w.tick(); res.Rungs != 1 {
		t.Fatalf("after an undelivered receipt: %+v, want 1 rung", res)
	}
	em := w.chain()["dr-c/email"]
	if em.EscalatesID != sms.ID || em.Escalation != "escalated: undelivered (30006)" {
		t.Errorf("rung %+v, want escalating %d because undelivered (30006)", em, sms.ID)
	}
	for _, id := range []string{"dr-a", "dr-b", "dr-d"} {
		if _, ok := w.chain()[id+"/email"]; ok {
			t.Errorf("%s was escalated before the deadline", id)
		}
	}
}

func TestEscalator_Tick_UnreachableFirstRungEscalatesAtOnce(t *testing.T) {
	people := []subscribers.Subscriber{person("dr-a"), person("dr-b", func(s *subscribers.Subscriber) { s.Phone = "" })}
	w := newAckWorld(t, ladderPolicy, people...)
	if res := w.tick(); res.Rungs != 1 {
		t.Fatalf("%+v, want dr-b (no phone) escalated at once", res)
	}
	if em := w.chain()["dr-b/email"]; em.Escalation != "escalated: not sent (no_address)" {
		t.Errorf("rung %+v", em)
	}
}

func TestEscalator_Tick_AckedAreNotEscalated(t *testing.T) {
	w := newAckWorld(t, ladderPolicy)
	w.ack("dr-a", "sms")
	w.clk.Add(15 * time.Minute)
	if res := w.tick(); res.Rungs != 3 {
		t.Fatalf("%+v, want 3 rungs", res)
	}
	if _, ok := w.chain()["dr-a/email"]; ok {
		t.Error("dr-a acknowledged and was escalated anyway")
	}
	// dr-b acknowledges by SMS before the email rung is sent: the rung is
	// not needed any more.
	w.ack("dr-b", "sms")
	w.tick()
	if em := w.chain()["dr-b/email"]; em.Status != store.StatusSuppressed || em.Reason != "ack_received" {
		t.Errorf("dr-b's queued email rung is %s/%s, want suppressed/ack_received", em.Status, em.Reason)
	}
	if em := w.chain()["dr-c/email"]; em.Status != store.StatusQueued {
		t.Errorf("dr-c's rung is %s, want still queued", em.Status)
	}
}

func TestEscalator_Tick_QuorumStops(t *testing.T) {
	pol := ladderPolicy
	pol.Quorum = 2
	w := newAckWorld(t, pol)
	w.clk.Add(15 * time.Minute)
	if res := w.tick(); res.Rungs != 4 {
		t.Fatalf("%+v, want 4 rungs", res)
	}
	w.ack("dr-a", "sms")
	w.ack("dr-d", "email")
	res := w.tick()
	if res.Met != 1 || res.Suppressed != 4 {
		t.Fatalf("%+v, want the quorum met and the 4 queued rungs suppressed", res)
	}
	for _, id := range clinicians {
		if em := w.chain()[id+"/email"]; em.Status != store.StatusSuppressed || em.Reason != "ack_received" {
			t.Errorf("%s's rung %s/%s, want suppressed/ack_received", id, em.Status, em.Reason)
		}
	}
	if p := w.policy(); p.State != store.AckMet {
		t.Errorf("state %s, want met", p.State)
	}
	w.clk.Add(time.Hour)
	if res := w.tick(); res.Policies != 0 || res.Deputies != 0 {
		t.Errorf("a met policy was looked at again: %+v", res)
	}
}

func TestEscalator_Tick_NoLadderGoesToDeputyAtDeadline(t *testing.T) {
	w := newAckWorld(t, AckPolicy{Within: 15 * time.Minute, Deputy: "deputies"})
	w.clk.Add(15 * time.Minute)
	res := w.tick()
	if res.Rungs != 0 || res.Deputies != 1 || res.Escalated != 1 {
		t.Fatalf("%+v, want the deputy told at once", res)
	}
	for _, id := range clinicians {
		if !hasEvent(events(t, w.st, w.chain()[id+"/sms"].ID), "escalated", "deputy", "deputy audience deputies told") {
			t.Errorf("%s's SMS has no event naming the deputy escalation", id)
		}
	}
}

func TestEscalator_Tick_ResolvedIncidentCloses(t *testing.T) {
	w := newAckWorld(t, ladderPolicy)
	w.clk.Add(5 * time.Minute)
	err := w.st.Write(context.Background(), func(tx *store.Tx) error {
		inc, err := tx.Incident(w.inc.ID)
		if err != nil {
			return err
		}
		u, err := inc.Apply("resolve", incidents.Change{Text: "restored"}, w.clk.Now())
		if err != nil {
			return err
		}
		return tx.SaveIncidentUpdate(inc, u)
	})
	if err != nil {
		t.Fatal(err)
	}
	w.clk.Add(15 * time.Minute)
	if res := w.tick(); res.Closed != 1 || res.Rungs != 0 {
		t.Fatalf("%+v, want the policy closed without rungs", res)
	}
}

func TestEscalator_Tick_RungCarriesOwnLink(t *testing.T) {
	w := newAckWorld(t, ladderPolicy)
	w.clk.Add(15 * time.Minute)
	w.tick()
	w.drain()
	links := map[string]string{}
	for _, m := range w.em.messages() {
		i := strings.Index(m.Text, "https://crier.example.org/ack/")
		if i < 0 {
			t.Fatalf("rung email to %s has no acknowledgement link:\n%s", m.Address, m.Text)
		}
		tok := strings.Fields(m.Text[i+len("https://crier.example.org/ack/"):])[0]
		c, err := w.signer.Verify(tok, w.clk.Now())
		if err != nil || c.TriggerID != w.out.TriggerID || c.SubscriberID+"@example.org" != m.Address {
			t.Errorf("link in the email to %s verifies to %+v (%v)", m.Address, c, err)
		}
		links[m.Address] = tok
		if !strings.Contains(m.Text, "ACTION REQUIRED") || strings.Contains(m.Text, "Reply ACK") {
			t.Errorf("the email rung does not ask in email's way:\n%s", m.Text)
		}
		if !strings.Contains(m.Text, "14:30") {
			t.Errorf("the rung's deadline is not its own 15 minutes (14:30):\n%s", m.Text)
		}
	}
	if len(links) != 4 {
		t.Errorf("%d distinct links for 4 people", len(links))
	}
}

func TestPlanner_Plan_AckPolicy(t *testing.T) {
	w := newAckWorld(t, ladderPolicy)
	p := w.policy()
	if p.Within != 15*time.Minute || !p.DueAt.Equal(t0.Add(15*time.Minute)) || p.Deputy != "deputies" || !slices.Equal(p.Ladder, []string{"email"}) || p.State != store.AckOpen {
		t.Errorf("stored policy %+v", p)
	}
	rows := logRows(t, w.st, w.out.Key)
	for _, id := range clinicians {
		if !strings.Contains(rows[id+"/sms"].Text, "Reply ACK by 14:15 to confirm.") {
			t.Errorf("%s's SMS does not ask for an ACK reply:\n%s", id, rows[id+"/sms"].Text)
		}
	}
	ackable, err := w.st.LatestAckable(context.Background(), "sms", "+447400123456")
	if err != nil || ackable != rows["dr-d/sms"].ID {
		t.Errorf("LatestAckable = %d, %v; want the newest SMS", ackable, err)
	}
}

func TestPlanner_Plan_AckLinksArePersonal(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("dr-a"), person("dr-b"))
	signer := NewAckSigner(testAckSecret, time.Hour, "https://crier.example.org")
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now, Acks: signer})
	inc := incident(t, st, t0)
	req := func(key string, ack *AckPolicy) Request {
		return Request{Key: key, Kind: "incident", Name: "open", Incident: inc, Targets: []Target{{Audience: "clinicians", Channels: []string{"email"}, Event: templates.EventAlert}}, Ack: ack}
	}
	plan(t, p, st, req("plain", nil))
	plan(t, p, st, req("asked", &AckPolicy{Within: time.Hour}))
	plain, asked := logRows(t, st, "plain"), logRows(t, st, "asked")
	if plain["dr-a/email"].Text != plain["dr-b/email"].Text || strings.Contains(plain["dr-a/email"].Text, "/ack/") {
		t.Error("without acknowledgement the alert email should be one body for the group, with no link")
	}
	if asked["dr-a/email"].Text == asked["dr-b/email"].Text {
		t.Error("with acknowledgement both recipients got the same body: one would have the other's link")
	}
	for _, id := range []string{"dr-a", "dr-b"} {
		if !strings.Contains(asked[id+"/email"].HTML, ">Acknowledge</a>") {
			t.Errorf("%s's HTML has no Acknowledge button", id)
		}
	}
}

func TestEscalator_Tick_BroadcastRungCarriesText(t *testing.T) {
	clk := newClock(t0)
	st, _ := openStore(t, clk)
	addSubscribers(t, st, person("dr-a"), person("dr-b", func(s *subscribers.Subscriber) { s.Locale = "cy" }))
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(t, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		Acks: NewAckSigner(testAckSecret, time.Hour, "https://crier.example.org")})
	req := message("send:pads", "clinicians", "sms")
	req.Name = req.Subject // as crier send and the broadcast API name it
	req.Ack = &AckPolicy{Within: 10 * time.Minute, Ladder: []string{"email"}}
	plan(t, p, st, req)
	drain(t, newDispatcher(st, clk, RetryPolicy{}, newTestChannel("sms", channels.KindSMS, nil)), clk) // the clock runs from the sending
	esc := NewEscalator(st, p, EscalatorOptions{})
	clk.Add(10 * time.Minute)
	if res, err := esc.Tick(context.Background(), clk.Now()); err != nil || res.Rungs != 2 {
		t.Fatalf("Tick = %+v, %v; want both escalated to email", res, err)
	}
	rows := logRows(t, st, "send:pads")
	for _, id := range []string{"dr-a", "dr-b"} {
		em := rows[id+"/email"]
		if em.Subject != "Paper prescriptions" || !strings.Contains(em.Text, "Use paper prescriptions until further notice.") {
			t.Errorf("%s's email rung: subject %q, text:\n%s", id, em.Subject, em.Text)
		}
		if strings.Contains(em.Text, "Reply ACK") || strings.Contains(em.Text, "Atebwch ACK") || !strings.Contains(em.Text, "/ack/") {
			t.Errorf("%s's email rung should ask by link, not by reply:\n%s", id, em.Text)
		}
	}
	if !strings.Contains(rows["dr-b/email"].Text, "ANGEN GWEITHREDU") {
		t.Errorf("dr-b reads Welsh; the rung's request is not in Welsh:\n%s", rows["dr-b/email"].Text)
	}
}

// benchAckWorld plans an SMS alert asking n clinicians (phone and email
// each) to acknowledge within 15 minutes, ladder email.
func benchAckWorld(b *testing.B, n int) (*fakeClock, *store.Store, *Escalator) {
	b.Helper()
	clk := newClock(t0)
	st, _ := openStore(b, clk)
	list := make([]subscribers.Subscriber, n)
	for i := range list {
		list[i] = subscribers.Subscriber{ID: fmt.Sprintf("s%06d", i), Name: fmt.Sprintf("Clinician %d", i), Roles: []string{"clinician"},
			Nations: []string{"wales"}, Locale: "en", TimeZone: "Europe/London", Phone: fmt.Sprintf("+4474%08d", i), Email: fmt.Sprintf("s%06d@example.org", i)}
	}
	addSubscribers(b, st, list...)
	p := NewPlanner(PlannerOptions{Templates: loadTemplates(b, nil), Channels: testChannels, Audiences: testAudiences, Now: clk.Now,
		Acks: NewAckSigner(testAckSecret, time.Hour, "https://crier.example.org")})
	inc := incident(b, st, t0)
	out := plan(b, p, st, Request{Key: "incident:bench:1", Kind: "incident", Name: "open", Incident: inc, Critical: true,
		Targets: []Target{{Audience: "clinicians", Channels: []string{"sms"}, Event: templates.EventAlert}}, Ack: &AckPolicy{Within: 15 * time.Minute, Ladder: []string{"email"}}})
	// Mark the SMS sent (the escalation clock runs from the sending)
	// without a dispatcher's half-second drain polls.
	ctx := context.Background()
	for {
		cl, err := st.Claim(ctx, store.ClaimOptions{Channel: "sms", Limit: 1000, Lease: time.Minute, TriggerIDs: []int64{out.TriggerID}})
		if err != nil {
			b.Fatal(err)
		}
		if len(cl) == 0 {
			break
		}
		rs := make([]store.Result, len(cl))
		for i, c := range cl {
			rs[i] = store.Result{ID: c.ID, Status: store.StatusSent, Segments: 1}
		}
		if err := st.Record(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	return clk, st, NewEscalator(st, p, EscalatorOptions{})
}

// BenchmarkEscalator_Tick_Idle5000 is the cost of the tick crier serve
// runs every 15 seconds while 5,000 people still have time to answer.
func BenchmarkEscalator_Tick_Idle5000(b *testing.B) {
	clk, _, esc := benchAckWorld(b, 5000)
	for b.Loop() {
		if res, err := esc.Tick(context.Background(), clk.Now()); err != nil || res.Rungs != 0 {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkEscalator_Tick_Escalate5000 is the tick at the deadline that
// renders and plans an email rung for each of 5,000 people.
func BenchmarkEscalator_Tick_Escalate5000(b *testing.B) {
	for range b.N {
		b.StopTimer()
		clk, _, esc := benchAckWorld(b, 5000)
		clk.Add(15 * time.Minute)
		b.StartTimer()
		if res, err := esc.Tick(context.Background(), clk.Now()); err != nil || res.Rungs != 5000 {
			b.Fatal(res, err)
		}
	}
}
