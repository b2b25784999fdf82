package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/twilio"
	"github.com/crier-dev/crier/dispatch"
	"github.com/crier-dev/crier/internal/fields"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/subscribers"
	"github.com/crier-dev/crier/templates"
)

// TestTwilioStatus_EndToEnd proves the status callback URL sent with each
// message identifies its delivery: an alert is planned and sent through
// the real Twilio driver to the in-process Twilio peer, and the callbacks
// Twilio would make to exactly the StatusCallback the peer received (its
// d, its SID, signed over that URL) move each delivery to its final state.
func TestTwilioStatus_EndToEnd(t *testing.T) {
	ctx := context.Background()
	h := newHooks(t)
	peer := channeltest.NewTwilioPeer(t)
	people := []subscribers.Subscriber{
		{ID: "dr-hughes", Name: "Dr Owain Hughes", Roles: []string{"clinician"}, Locale: "en", TimeZone: "Europe/London", Phone: "+447400123411"},
		{ID: "dr-morgan", Name: "Dr Eleri Morgan", Roles: []string{"clinician"}, Locale: "en", TimeZone: "Europe/London", Phone: morganPhone},
	}
	if err := h.st.Write(ctx, func(tx *store.Tx) error { return tx.UpsertSubscribers(people, "config") }); err != nil {
		t.Fatal(err)
	}
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	p := dispatch.NewPlanner(dispatch.PlannerOptions{Templates: tmpl, Channels: map[string]channels.Kind{"clinician-sms": channels.KindSMS},
		Audiences: []dispatch.Audience{{Name: "clinicians", Selector: subscribers.Selector{Roles: []string{"clinician"}}}}, Now: h.clk.Now})
	out, err := p.Plan(ctx, h.st, dispatch.Request{Key: "send:paper", Kind: "send", Name: "paper", Subject: "Paper prescriptions",
		Body: "Use paper prescriptions until further notice.", Targets: []dispatch.Target{{Audience: "clinicians", Channels: []string{"clinician-sms"}, Event: templates.EventMessage}}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := twilio.New("clinician-sms", twilio.Config{AccountSID: peer.AccountSID, AuthToken: fields.Secret(peer.AuthToken), From: peer.From,
		StatusCallbackURL: signedURL(TwilioStatusPath, ""), APIBaseURL: peer.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(h.st, dispatch.Options{Now: h.clk.Now})
	d.AddChannel(ch, dispatch.Limits{Concurrency: 2})
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := d.Drain(dctx, []int64{out.TriggerID}, time.Time{}, nil); err != nil {
		t.Fatalf("Drain: %v", err)
	}

	byPhone := map[string]store.LogEntry{}
	_ = h.st.Log(ctx, store.LogFilter{TriggerIDs: []int64{out.TriggerID}}, func(e *store.LogEntry) error { byPhone[e.Address] = *e; return nil })
	reqs := peer.Requests()
	if len(reqs) != 2 {
		t.Fatalf("the peer received %d messages, want 2", len(reqs))
	}
	final := map[string]struct{ status, code, want string }{
		morganPhone:     {"delivered", "", store.StatusDelivered},
		"+447400123411": {"undelivered", "30006", store.StatusFailed},
	}
	for _, req := range reqs {
		e := byPhone[req.To]
		if e.Status != store.StatusSent || e.ProviderID != req.SID {
			t.Fatalf("%s: log %s with provider id %q, peer SID %q", req.To, e.Status, e.ProviderID, req.SID)
		}
		cb, err := url.Parse(req.StatusCallback)
		if err != nil || !strings.HasPrefix(req.StatusCallback, signedURL(TwilioStatusPath, "")) || cb.Query().Get("d") != fmt.Sprint(e.ID) {
			t.Fatalf("%s: StatusCallback %q does not name delivery %d under the public URL", req.To, req.StatusCallback, e.ID)
		}
		// Twilio calls (and signs) exactly the URL it was given.
		for _, status := range []string{"sent", final[req.To].status} {
			form := statusForm(req.SID, status, "")
			if status == final[req.To].status {
				form = statusForm(req.SID, status, final[req.To].code)
			}
			r := h.post(cb.Path, cb.RawQuery, form, twilioSign(hookToken, req.StatusCallback, form), "")
			if r.code != http.StatusNoContent {
				t.Fatalf("%s: callback %s: %d %q", req.To, status, r.code, r.body)
			}
		}
	}
	_ = h.st.Log(ctx, store.LogFilter{TriggerIDs: []int64{out.TriggerID}}, func(e *store.LogEntry) error {
		if want := final[e.Address]; e.Status != want.want {
			t.Errorf("%s: final status %s (%s), want %s", e.Subscriber, e.Status, e.Detail, want.want)
		}
		return nil
	})
	if e := h.logEntry(byPhone["+447400123411"].ID); e.Reason != "bad_address" || !strings.Contains(e.Detail, "30006") {
		t.Errorf("undelivered: %s %q, want bad_address naming 30006", e.Reason, e.Detail)
	}
}
