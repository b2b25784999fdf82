package server

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

const (
	morganPhone = "+447400123410"
	ourNumber   = "+447400999000"
	strangerNum = "+447400555000"
)

// TestParseSMSReply_Words proves every keyword in any case and with
// surrounding punctuation, ACK with a reference, the configured digit, and
// that anything longer than a keyword is not one.
func TestParseSMSReply_Words(t *testing.T) {
	cases := []struct {
		body, action, ref string
	}{
		{"STOP", "stop", ""}, {"STOPALL", "stop", ""}, {"UNSUBSCRIBE", "stop", ""}, {"CANCEL", "stop", ""}, {"END", "stop", ""}, {"QUIT", "stop", ""},
		{"START", "start", ""}, {"UNSTOP", "start", ""}, {"YES", "start", ""},
		{"HELP", "help", ""}, {"INFO", "help", ""},
		{"ACK", "ack", ""},
		{"stop", "stop", ""}, {"Stop.", "stop", ""}, {"  quit!  ", "stop", ""}, {"\"End\"", "stop", ""}, {"unsubscribe\n", "stop", ""},
		{"start!", "start", ""}, {"Yes.", "start", ""}, {"help?", "help", ""}, {"ack", "ack", ""}, {"Ack.", "ack", ""},
		{"STOP\u200b", "stop", ""},
		{"ACK INC-1", "ack", "INC-1"}, {"ack inc-3.", "ack", "INC-3"}, {"Ack, INC-12", "ack", "INC-12"}, {"ACK 42", "ack", "42"},
		{"1", "ack", ""}, {"1.", "ack", ""}, {" 1 ", "ack", ""},
		{"2", "unknown", ""}, {"please stop", "unknown", ""}, {"STOP ALL", "unknown", ""}, {"stop texting the ward", "unknown", ""},
		{"ACK INC-1 thanks", "unknown", ""}, {"", "unknown", ""}, {"...", "unknown", ""}, {"acknowledged", "unknown", ""},
	}
	for _, tc := range cases {
		got := ParseSMSReply(tc.body, "1")
		if got.Action != tc.action || got.Ref != tc.ref {
			t.Errorf("ParseSMSReply(%q) = %+v, want %s %q", tc.body, got, tc.action, tc.ref)
		}
	}
	if got := ParseSMSReply("1", ""); got.Action != "unknown" {
		t.Errorf("\"1\" without an ack digit = %+v, want unknown", got)
	}
}

func inboundForm(from, body, sid string) url.Values {
	return url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {"AC0123456789abcdef0123456789abcdef"}, "From": {from},
		"To": {ourNumber}, "Body": {body}, "NumMedia": {"0"}, "NumSegments": {"1"}, "ApiVersion": {"2010-04-01"}}
}

// text sends an inbound SMS, signed, and returns the answer.
func (h *hooks) text(from, body string) reply {
	h.t.Helper()
	h.mu.Lock()
	n := len(h.observed)
	h.mu.Unlock()
	return h.signedPost(TwilioInboundPath, "", inboundForm(from, body, fmt.Sprintf("SMin%04d", n)))
}

// twimlMessage checks an answer is TwiML and returns its message ("" for <Response/>).
func twimlMessage(t *testing.T, r reply) string {
	t.Helper()
	if r.code != http.StatusOK || !strings.HasPrefix(r.contentType, "text/xml") {
		t.Fatalf("answer %d %q %q, want 200 text/xml", r.code, r.contentType, r.body)
	}
	var doc struct {
		XMLName  xml.Name `xml:"Response"`
		Messages []string `xml:"Message"`
	}
	if err := xml.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatalf("answer is not TwiML: %v\n%s", err, r.body)
	}
	if len(doc.Messages) > 1 {
		t.Fatalf("%d messages in %s", len(doc.Messages), r.body)
	}
	if len(doc.Messages) == 0 {
		return ""
	}
	return doc.Messages[0]
}

func (h *hooks) optedOut(phone string) bool {
	h.t.Helper()
	out, err := h.st.OptedOut(context.Background(), "sms", phone)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *hooks) lastInbound() store.Inbound {
	h.t.Helper()
	list, err := h.st.InboundMessages(context.Background())
	if err != nil || len(list) == 0 {
		h.t.Fatalf("inbound: %v, %d rows", err, len(list))
	}
	return list[len(list)-1]
}

// TestTwilioInbound_Keywords proves, over HTTP, what every opt-out, opt-in
// and help word does: the opt-out list, the inbound row and the TwiML.
func TestTwilioInbound_Keywords(t *testing.T) {
	cases := []struct {
		body      string
		action    string
		optedOut  bool   // after the reply, starting opted out when start
		wantReply string // "" for <Response/>
	}{
		{"STOP", "stop", true, ""}, {"stopall", "stop", true, ""}, {"Unsubscribe.", "stop", true, ""},
		{"cancel", "stop", true, ""}, {"END!", "stop", true, ""}, {"Quit", "stop", true, ""},
		{"START", "start", false, ""}, {"unstop", "start", false, ""}, {"Yes!", "start", false, ""},
		{"HELP", "help", false, "Help: reply ACK to acknowledge, STOP to stop."},
		{"help?", "help", false, "Help: reply ACK to acknowledge, STOP to stop."},
		{"Is the ward open?", "unknown", false, "Sorry, not understood. Reply HELP for help."},
		{"please stop", "unknown", false, "Sorry, not understood. Reply HELP for help."},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			h := newHooks(t)
			h.sentSMS("incident:INC-1:1", "dr-morgan", morganPhone, "INC-1", "SM0001", false)
			if tc.action == "start" {
				if err := h.st.OptOut(context.Background(), "sms", morganPhone, ourNumber, "sms reply"); err != nil {
					t.Fatal(err)
				}
			}
			r := h.text(morganPhone, tc.body)
			if got := twimlMessage(t, r); got != tc.wantReply {
				t.Errorf("reply %q, want %q", got, tc.wantReply)
			}
			if tc.wantReply == "" && !strings.Contains(r.body, "<Response/>") {
				t.Errorf("body %q, want an empty <Response/>", r.body)
			}
			if got := h.optedOut(morganPhone); got != tc.optedOut {
				t.Errorf("opted out = %v, want %v", got, tc.optedOut)
			}
			in := h.lastInbound()
			if in.Action != tc.action || in.Body != tc.body || in.From != morganPhone || in.To != ourNumber || in.ProviderID == "" {
				t.Errorf("inbound row %+v, want action %s with the message as sent", in, tc.action)
			}
			if o := h.outcomes(); o[len(o)-1] != TwilioInboundPath+" "+tc.action {
				t.Errorf("observed %v", o)
			}
		})
	}
}

// TestTwilioInbound_Ack proves ACK, ACK <incident>, ACK <delivery id> and
// the configured digit acknowledge the right delivery (recorded through
// store.RecordAck, so every delivery of that trigger to the person is
// marked), that the answer confirms with the time in the recipient's zone,
// and that repeats and wrong references are answered without an error.
func TestTwilioInbound_Ack(t *testing.T) {
	ctx := context.Background()
	h := newHooks(t)
	if err := h.st.Write(ctx, func(tx *store.Tx) error {
		return tx.UpsertSubscribers([]subscribers.Subscriber{{ID: "dr-morgan", Name: "Dr Eleri Morgan", Locale: "cy", TimeZone: "Europe/London", Phone: morganPhone}}, "config")
	}); err != nil {
		t.Fatal(err)
	}
	inc1 := h.sentSMS("incident:INC-1:1", "dr-morgan", morganPhone, "INC-1", "SM0001", true)
	inc2 := h.sentSMS("incident:INC-2:1", "dr-morgan", morganPhone, "INC-2", "SM0002", true)
	inc3 := h.sentSMS("incident:INC-3:1", "dr-morgan", morganPhone, "INC-3", "SM0003", true)
	h.sentSMS("incident:INC-4:1", "dr-morgan", morganPhone, "INC-4", "SM0004", false) // asks for no acknowledgement
	steps := []struct {
		body, reply string
		delivery    int64 // the delivery the inbound row names (0: none)
		outcome     string
	}{
		{"ACK", "Acknowledged INC-3 at 08:00. Thank you.", inc3, "ack"},
		{"ack.", "Already acknowledged INC-3 at 08:00. Thank you.", inc3, "ack_again"},
		{"ACK inc-1", "Acknowledged INC-1 at 08:00. Thank you.", inc1, "ack"},
		{"ACK INC-4", "There is nothing to acknowledge for INC-4 from this number.", 0, "ack_none"},
		{"ACK INC-99", "There is nothing to acknowledge for INC-99 from this number.", 0, "ack_none"},
		{fmt.Sprintf("ACK %d", inc2), "Acknowledged INC-2 at 08:00. Thank you.", inc2, "ack"},
	}
	for _, s := range steps {
		got := twimlMessage(t, h.text(morganPhone, s.body))
		if got != s.reply {
			t.Errorf("%q: reply %q, want %q", s.body, got, s.reply)
		}
		if in := h.lastInbound(); in.Action != "ack" || in.DeliveryID != s.delivery {
			t.Errorf("%q: inbound row %+v, want action ack naming delivery %d", s.body, in, s.delivery)
		}
		if o := h.outcomes(); o[len(o)-1] != TwilioInboundPath+" "+s.outcome {
			t.Errorf("%q: observed %q, want %s", s.body, o[len(o)-1], s.outcome)
		}
	}
	for _, id := range []int64{inc1, inc2, inc3} {
		events, _ := h.st.Events(ctx, id)
		if last := events[len(events)-1]; last.Status != "acknowledged" || last.Reason != "sms" {
			t.Errorf("delivery %d: last event %+v, want acknowledged via sms", id, last)
		}
	}

	// The digit acknowledges the latest, and the time is in the
	// recipient's zone (summer: BST).
	h.clk.Add(200 * 24 * time.Hour) // 2027-06-13 08:00 UTC
	inc5 := h.sentSMS("incident:INC-5:1", "dr-morgan", morganPhone, "INC-5", "SM0005", true)
	if got := twimlMessage(t, h.text(morganPhone, "1")); got != "Acknowledged INC-5 at 09:00. Thank you." {
		t.Errorf("digit: reply %q", got)
	}
	if in := h.lastInbound(); in.DeliveryID != inc5 {
		t.Errorf("digit acknowledged %d, want %d", in.DeliveryID, inc5)
	}
}

// TestTwilioInbound_UnknownNumber proves a number crier never messaged
// can still opt out (it is the person's right), is told there is nothing
// to acknowledge, gets help and the unknown-reply text, and every message
// is logged.
func TestTwilioInbound_UnknownNumber(t *testing.T) {
	h := newHooks(t)
	h.sentSMS("incident:INC-1:1", "dr-morgan", morganPhone, "INC-1", "SM0001", true)
	steps := []struct{ body, reply, action string }{
		{"ACK", "There is nothing to acknowledge from this number.", "ack"},
		{"1", "There is nothing to acknowledge from this number.", "ack"},
		{"HELP", "Help: reply ACK to acknowledge, STOP to stop.", "help"},
		{"who is this?", "Sorry, not understood. Reply HELP for help.", "unknown"},
		{"STOP", "", "stop"},
	}
	for _, s := range steps {
		if got := twimlMessage(t, h.text(strangerNum, s.body)); got != s.reply {
			t.Errorf("%q: reply %q, want %q", s.body, got, s.reply)
		}
		if in := h.lastInbound(); in.Action != s.action || in.From != strangerNum || in.DeliveryID != 0 {
			t.Errorf("%q: inbound row %+v, want action %s", s.body, in, s.action)
		}
	}
	if !h.optedOut(strangerNum) {
		t.Error("a stranger's STOP was not recorded")
	}
	list, _ := h.st.InboundMessages(context.Background())
	if len(list) != len(steps) {
		t.Errorf("%d inbound rows, want %d", len(list), len(steps))
	}
	// Nobody's acknowledgement was recorded by the stranger.
	if e := h.logEntry(1); e.Status != store.StatusSent {
		t.Errorf("dr-morgan's delivery is %s", e.Status)
	}
	if n := count(t, h, "acks"); n != 0 {
		t.Errorf("%d acknowledgements recorded from a stranger", n)
	}
}

// TestTwilioInbound_Forged proves an unsigned or forged STOP, START or
// ACK changes nothing: no opt-out, no acknowledgement, no inbound row.
func TestTwilioInbound_Forged(t *testing.T) {
	h := newHooks(t)
	h.sentSMS("incident:INC-1:1", "dr-morgan", morganPhone, "INC-1", "SM0001", true)
	if err := h.st.OptOut(context.Background(), "sms", "+447400123411", ourNumber, "sms reply"); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot()
	for _, tc := range []struct{ from, body, sig string }{
		{morganPhone, "STOP", ""},
		{morganPhone, "ACK", "Zm9yZ2Vk"},
		{"+447400123411", "START", twilioSign("notTheToken0123456789abcdefghijk", signedURL(TwilioInboundPath, ""), inboundForm("+447400123411", "START", "SMx"))},
		{morganPhone, "ACK", twilioSign(hookToken, h.srv.URL+TwilioInboundPath, inboundForm(morganPhone, "ACK", "SMx"))},
	} {
		r := h.post(TwilioInboundPath, "", inboundForm(tc.from, tc.body, "SMx"), tc.sig, "")
		if r.code != http.StatusForbidden || strings.Contains(r.body, "Acknowledged") {
			t.Errorf("%s with signature %q: %d %q, want 403", tc.body, tc.sig, r.code, r.body)
		}
	}
	if after := h.snapshot(); after != before {
		t.Errorf("forged inbound messages changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestTwilioInbound_TwiMLEscaped proves configured reply texts are
// escaped into the TwiML, so a "<" or "&" cannot break or inject markup.
func TestTwilioInbound_TwiMLEscaped(t *testing.T) {
	help := `Reply <ACK> & we'll know; "STOP" </Message><Redirect>https://evil.example</Redirect>`
	h := newHooks(t, func(o *Options) { o.Twilio.Replies.HelpText = help })
	r := h.text(morganPhone, "HELP")
	if got := twimlMessage(t, r); got != help {
		t.Errorf("message %q, want %q", got, help)
	}
	if strings.Contains(r.body, "<Redirect>") {
		t.Errorf("raw markup in %s", r.body)
	}
}

// TestTwilioInbound_OptOutAppliesToPlanning proves a STOP takes that
// number out of the next alert (suppressed, opted_out) and a START puts it
// back; with critical_overrides_opt_out a critical alert still goes, with
// its own reason and a logged event, but never against the subscriber's
// own opted_out setting.
func TestTwilioInbound_OptOutAppliesToPlanning(t *testing.T) {
	ctx := context.Background()
	h := newHooks(t)
	people := []subscribers.Subscriber{
		{ID: "dr-morgan", Name: "Dr Eleri Morgan", Roles: []string{"clinician"}, Nations: []string{"wales"}, Locale: "en", TimeZone: "Europe/London", Phone: morganPhone},
		{ID: "dr-hughes", Name: "Dr Owain Hughes", Roles: []string{"clinician"}, Nations: []string{"wales"}, Locale: "en", TimeZone: "Europe/London", Phone: "+447400123411",
			OptedOut: []string{"sms"}},
	}
	if err := h.st.Write(ctx, func(tx *store.Tx) error { return tx.UpsertSubscribers(people, "config") }); err != nil {
		t.Fatal(err)
	}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	planner := func(override bool) *dispatch.Planner {
		return dispatch.NewPlanner(dispatch.PlannerOptions{Templates: tmpl, Channels: map[string]channels.Kind{"clinician-sms": channels.KindSMS},
			Audiences: []dispatch.Audience{{Name: "clinicians", Selector: subscribers.Selector{Roles: []string{"clinician"}}}}, Now: h.clk.Now,
			CriticalOverridesOptOut: override})
	}
	plan := func(p *dispatch.Planner, key string, critical bool) map[string]store.LogEntry {
		t.Helper()
		out, err := p.Plan(ctx, h.st, dispatch.Request{Key: key, Kind: "send", Name: "test", Subject: "Paper prescriptions", Body: "Use paper prescriptions.",
			Critical: critical, Targets: []dispatch.Target{{Audience: "clinicians", Channels: []string{"clinician-sms"}, Event: templates.EventMessage}}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]store.LogEntry{}
		_ = h.st.Log(ctx, store.LogFilter{TriggerIDs: []int64{out.TriggerID}}, func(e *store.LogEntry) error { got[e.Subscriber] = *e; return nil })
		return got
	}
	if e := plan(planner(false), "send:before", false)["dr-morgan"]; e.Status != store.StatusQueued {
		t.Fatalf("before STOP: %s/%s", e.Status, e.Reason)
	}
	twimlMessage(t, h.text(morganPhone, "Stop"))
	if e := plan(planner(false), "send:after-stop", false)["dr-morgan"]; e.Status != store.StatusSuppressed || e.Reason != "opted_out" {
		t.Errorf("after STOP: %s/%s, want suppressed/opted_out", e.Status, e.Reason)
	}
	if e := plan(planner(false), "send:critical-no-policy", true)["dr-morgan"]; e.Status != store.StatusSuppressed || e.Reason != "opted_out" {
		t.Errorf("critical without the policy: %s/%s, want suppressed/opted_out", e.Status, e.Reason)
	}
	if e := plan(planner(true), "send:routine-with-policy", false)["dr-morgan"]; e.Status != store.StatusSuppressed {
		t.Errorf("routine with the policy: %s/%s, want suppressed", e.Status, e.Reason)
	}
	got := plan(planner(true), "send:critical-with-policy", true)
	e := got["dr-morgan"]
	if e.Status != store.StatusQueued || e.Reason != "opt_out_overridden" || !strings.Contains(e.Detail, "critical_overrides_opt_out") {
		t.Errorf("critical with the policy: %s/%s %q, want queued/opt_out_overridden naming the policy", e.Status, e.Reason, e.Detail)
	}
	events, _ := h.st.Events(ctx, e.ID)
	if len(events) != 1 || events[0].Reason != "opt_out_overridden" {
		t.Errorf("events %+v, want the override on record", events)
	}
	if hu := got["dr-hughes"]; hu.Status != store.StatusSuppressed || hu.Reason != "opted_out" {
		t.Errorf("the subscriber's own opt-out under the policy: %s/%s, want suppressed/opted_out", hu.Status, hu.Reason)
	}
	twimlMessage(t, h.text(morganPhone, "START"))
	if e := plan(planner(false), "send:after-start", false)["dr-morgan"]; e.Status != store.StatusQueued || e.Reason != "" {
		t.Errorf("after START: %s/%s, want queued", e.Status, e.Reason)
	}
}
