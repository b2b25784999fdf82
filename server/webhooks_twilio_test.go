package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/store"
)

// TestTwilioStatus_Signature proves only a request signed with the auth
// token over the public URL (query included) is acted on. Everything else
// is refused with 403 and changes nothing: unsigned, signed with another
// token, signed over the URL the server itself sees (a server that trusted
// the Host header would accept it), a changed field, a changed query.
func TestTwilioStatus_Signature(t *testing.T) {
	h := newHooks(t)
	id := h.sentSMS("incident:INC-1:1", "dr-morgan", "+447400123410", "INC-1", "SM0001", false)
	q := fmt.Sprintf("d=%d", id)
	form := statusForm("SM0001", "delivered", "")
	good := twilioSign(hookToken, signedURL(TwilioStatusPath, q), form)
	tampered := statusForm("SM0001", "undelivered", "30006")
	refused := []struct {
		name, query, sig, host string
		form                   url.Values
		outcome                string
	}{
		{"unsigned", q, "", "", form, "unsigned"},
		{"another token", q, twilioSign("someOtherToken0123456789abcdefgh", signedURL(TwilioStatusPath, q), form), "", form, "forged"},
		{"signed over the local URL", q, twilioSign(hookToken, h.srv.URL+TwilioStatusPath+"?"+q, form), "", form, "forged"},
		{"Host spoofed, signed over it", q, twilioSign(hookToken, "http://evil.example"+TwilioStatusPath+"?"+q, form), "evil.example", form, "forged"},
		{"signed without the query", q, twilioSign(hookToken, signedURL(TwilioStatusPath, ""), form), "", form, "forged"},
		{"a field changed after signing", q, good, "", tampered, "forged"},
		{"the query changed after signing", fmt.Sprintf("d=%d", id+1), good, "", form, "forged"},
		{"garbage signature", q, "bm90IGEgc2lnbmF0dXJl", "", form, "forged"},
	}
	before := h.snapshot()
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post(TwilioStatusPath, tc.query, tc.form, tc.sig, tc.host)
			if r.code != http.StatusForbidden {
				t.Errorf("status %d %q, want 403", r.code, r.body)
			}
			if strings.Contains(r.body, hookToken) {
				t.Error("the answer contains the auth token")
			}
			if after := h.snapshot(); after != before {
				t.Errorf("a refused request changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if o := h.outcomes(); o[len(o)-1] != TwilioStatusPath+" "+tc.outcome {
				t.Errorf("observed %q, want %s", o[len(o)-1], tc.outcome)
			}
		})
	}
	// The right signature works whatever Host header the proxy passes on.
	if r := h.post(TwilioStatusPath, q, form, good, "internal-backend:8080"); r.code != http.StatusNoContent {
		t.Fatalf("signed callback: %d %q, want 204", r.code, r.body)
	}
	if e := h.logEntry(id); e.Status != store.StatusDelivered {
		t.Errorf("log status %q after a signed delivered callback, want delivered", e.Status)
	}
	if h.notified == nil || h.notified[0] != id {
		t.Errorf("Notify heard %v, want delivery %d", h.notified, id)
	}
}

// TestTwilioStatus_Sequences proves that through the webhook, duplicates
// and out-of-order callbacks leave the log in the right final state.
func TestTwilioStatus_Sequences(t *testing.T) {
	type cb struct{ status, code string }
	cases := []struct {
		name       string
		seq        []cb
		wantStatus string
		wantReason string
		wantProv   string
		wantCode   string
		outcomes   []string
	}{
		{"sent, delivered, late sent", []cb{{"sent", ""}, {"delivered", ""}, {"sent", ""}}, "delivered", "receipt", "delivered", "", []string{"applied", "applied", "duplicate"}},
		{"delivered then undelivered", []cb{{"delivered", ""}, {"undelivered", "30003"}}, "delivered", "receipt", "delivered", "", []string{"applied", "duplicate"}},
		{"undelivered 30006", []cb{{"sent", ""}, {"undelivered", "30006"}}, "failed", "bad_address", "undelivered", "30006", []string{"applied", "applied"}},
		{"duplicated delivered", []cb{{"delivered", ""}, {"delivered", ""}}, "delivered", "receipt", "delivered", "", []string{"applied", "duplicate"}},
		{"undelivered 21610", []cb{{"failed", "21610"}, {"sent", ""}}, "failed", "opted_out", "failed", "21610", []string{"applied", "duplicate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHooks(t)
			id := h.sentSMS("incident:INC-1:1", "dr-morgan", "+447400123410", "INC-1", "SM0001", false)
			for i, c := range tc.seq {
				h.clk.Add(time.Second)
				r := h.signedPost(TwilioStatusPath, fmt.Sprintf("d=%d", id), statusForm("SM0001", c.status, c.code))
				if r.code != http.StatusNoContent {
					t.Fatalf("callback %d (%s): %d %q", i, c.status, r.code, r.body)
				}
			}
			e := h.logEntry(id)
			if e.Status != tc.wantStatus || e.Reason != tc.wantReason {
				t.Errorf("log %s/%s (%s), want %s/%s", e.Status, e.Reason, e.Detail, tc.wantStatus, tc.wantReason)
			}
			if tc.wantCode != "" && !strings.Contains(e.Detail, tc.wantCode) {
				t.Errorf("log detail %q does not name error %s", e.Detail, tc.wantCode)
			}
			rs, err := h.st.Receipt(context.Background(), id)
			if err != nil || rs.ProviderStatus != tc.wantProv || rs.ErrorCode != tc.wantCode {
				t.Errorf("receipt state %+v, %v; want provider %s code %q", rs, err, tc.wantProv, tc.wantCode)
			}
			var want []string
			for _, o := range tc.outcomes {
				want = append(want, TwilioStatusPath+" "+o)
			}
			if got := h.outcomes(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("outcomes %v, want %v", got, want)
			}
			events, _ := h.st.Events(context.Background(), id)
			if last := events[len(events)-1]; last.Status != tc.wantStatus && last.Status != "receipt" {
				t.Errorf("last event %+v does not match the final state %s", last, tc.wantStatus)
			}
		})
	}
}

// TestTwilioStatus_Finding proves callbacks find their delivery by the d
// in the URL, fall back to the SID, and are refused when neither matches.
func TestTwilioStatus_Finding(t *testing.T) {
	h := newHooks(t)
	a := h.sentSMS("incident:INC-1:1", "dr-morgan", "+447400123410", "INC-1", "SMa", false)
	b := h.sentSMS("incident:INC-1:2", "dr-hughes", "+447400123411", "INC-1", "SMb", false)
	if r := h.signedPost(TwilioStatusPath, "", statusForm("SMb", "delivered", "")); r.code != http.StatusNoContent {
		t.Fatalf("callback without d: %d %q", r.code, r.body)
	}
	// d names a, but the SID is b's: the SID wins, a is untouched.
	if r := h.signedPost(TwilioStatusPath, fmt.Sprintf("d=%d", a), statusForm("SMb", "undelivered", "30003")); r.code != http.StatusNoContent {
		t.Fatalf("callback with a wrong d: %d %q", r.code, r.body)
	}
	if ea, eb := h.logEntry(a), h.logEntry(b); ea.Status != store.StatusSent || eb.Status != store.StatusDelivered {
		t.Errorf("a %s, b %s; want a sent, b delivered", ea.Status, eb.Status)
	}
	before := h.snapshot()
	for name, tc := range map[string]struct {
		query string
		form  url.Values
		want  int
	}{
		"no such delivery": {fmt.Sprintf("d=%d", b+10), statusForm("SMzz", "delivered", ""), http.StatusNotFound},
		"unknown status":   {fmt.Sprintf("d=%d", a), statusForm("SMa", "teleported", ""), http.StatusBadRequest},
		"no status":        {fmt.Sprintf("d=%d", a), url.Values{"MessageSid": {"SMa"}}, http.StatusBadRequest},
	} {
		if r := h.signedPost(TwilioStatusPath, tc.query, tc.form); r.code != tc.want {
			t.Errorf("%s: %d %q, want %d", name, r.code, r.body, tc.want)
		}
	}
	if h.snapshot() != before {
		t.Error("a callback for no delivery changed the database")
	}
}

// TestTwilioWebhooks_NotServed proves the routes do not exist (404)
// without an auth token or a public URL to verify against, and that other
// methods are refused.
func TestTwilioWebhooks_NotServed(t *testing.T) {
	for name, f := range map[string]hookOpt{
		"no Twilio options": func(o *Options) { o.Twilio = nil },
		"no auth token":     func(o *Options) { o.Twilio.AuthToken = "" },
		"no public URL":     func(o *Options) { o.Twilio.PublicURL = "" },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHooks(t, f)
			for _, route := range []string{TwilioStatusPath, TwilioInboundPath} {
				if r := h.signedPost(route, "d=1", statusForm("SM1", "delivered", "")); r.code != http.StatusNotFound {
					t.Errorf("%s: %d, want 404", route, r.code)
				}
			}
		})
	}
	h := newHooks(t)
	resp, err := h.srv.Client().Get(h.srv.URL + TwilioStatusPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", TwilioStatusPath, resp.StatusCode)
	}
}

// TestTwilioStatus_TooLarge proves an oversized body is refused before
// anything is read into the store.
func TestTwilioStatus_TooLarge(t *testing.T) {
	h := newHooks(t)
	form := statusForm("SM1", "delivered", "")
	form.Set("Padding", strings.Repeat("x", 10000))
	if r := h.signedPost(TwilioStatusPath, "d=1", form); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("%d, want 413", r.code)
	}
}

// Interface guard: the real store is what the webhooks need.
var _ TwilioStore = (*store.Store)(nil)
