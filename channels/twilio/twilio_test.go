package twilio_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/twilio"
	"github.com/crier-dev/crier/internal/fields"
)

// peerConfig is a Config that talks to p with its account credentials.
func peerConfig(p *channeltest.TwilioPeer) twilio.Config {
	return twilio.Config{
		AccountSID: p.AccountSID,
		AuthToken:  fields.Secret(p.AuthToken),
		From:       p.From,
		APIBaseURL: p.URL,
		Timeout:    5 * time.Second,
	}
}

func newSender(t testing.TB, c twilio.Config, opts ...twilio.Option) *twilio.Sender {
	t.Helper()
	s, err := twilio.New("clinician-sms", c, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestSender_Send_PeerReceivesForm(t *testing.T) {
	p := channeltest.NewTwilioPeer(t)
	tests := []struct {
		name        string
		mutate      func(*twilio.Config)
		msg         channels.Message
		wantUser    string
		wantFrom    string
		wantService string
		wantCB      []string // nil: no StatusCallback field at all
		wantStatus  string
		wantSegs    int
	}{
		{
			name:     "from number, auth token",
			msg:      channels.Message{DeliveryID: 42, Address: "+447400123456", Text: "[SEV1] Referrals down in Wales: use paper forms"},
			wantUser: p.AccountSID, wantFrom: p.From, wantStatus: "queued", wantSegs: 1,
		},
		{
			name:     "messaging service only",
			mutate:   func(c *twilio.Config) { c.From, c.MessagingServiceSID = "", p.MessagingServiceSID },
			msg:      channels.Message{DeliveryID: 43, Address: "+447400123457", Text: "ok"},
			wantUser: p.AccountSID, wantService: p.MessagingServiceSID, wantStatus: "accepted", wantSegs: 1,
		},
		{
			name:     "service and pinned sender",
			mutate:   func(c *twilio.Config) { c.MessagingServiceSID = p.MessagingServiceSID },
			msg:      channels.Message{DeliveryID: 44, Address: "+447400123458", Text: "ok"},
			wantUser: p.AccountSID, wantFrom: p.From, wantService: p.MessagingServiceSID, wantStatus: "queued", wantSegs: 1,
		},
		{
			name: "api key",
			mutate: func(c *twilio.Config) {
				c.AuthToken, c.APIKeySID, c.APIKeySecret = "", p.APIKeySID, fields.Secret(p.APIKeySecret)
			},
			msg:      channels.Message{DeliveryID: 45, Address: "+447400123459", Text: "ok"},
			wantUser: p.APIKeySID, wantFrom: p.From, wantStatus: "queued", wantSegs: 1,
		},
		{
			name:     "status callback gets d",
			mutate:   func(c *twilio.Config) { c.StatusCallbackURL = "https://hooks.example.org/twilio/status" },
			msg:      channels.Message{DeliveryID: 46, Address: "+447400123456", Text: "ok"},
			wantUser: p.AccountSID, wantFrom: p.From, wantStatus: "queued", wantSegs: 1,
			wantCB: []string{"https://hooks.example.org/twilio/status?d=46"},
		},
		{
			name:     "status callback keeps its query",
			mutate:   func(c *twilio.Config) { c.StatusCallbackURL = "https://hooks.example.org/s?tenant=nhs&z=1" },
			msg:      channels.Message{DeliveryID: 47, Address: "+447400123456", Text: "ok"},
			wantUser: p.AccountSID, wantFrom: p.From, wantStatus: "queued", wantSegs: 1,
			wantCB: []string{"https://hooks.example.org/s?tenant=nhs&z=1&d=47"},
		},
		{
			name:     "status callback without delivery id",
			mutate:   func(c *twilio.Config) { c.StatusCallbackURL = "https://hooks.example.org/s" },
			msg:      channels.Message{Address: "+447400123456", Text: "ok"},
			wantUser: p.AccountSID, wantFrom: p.From, wantStatus: "queued", wantSegs: 1,
			wantCB: []string{"https://hooks.example.org/s"},
		},
		{
			name:     "long unicode body",
			msg:      channels.Message{DeliveryID: 48, Address: "+447400123456", Text: repeat("Ambulance dispatch ✓ ", 8)},
			wantUser: p.AccountSID, wantFrom: p.From, wantStatus: "queued", wantSegs: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := peerConfig(p)
			if tt.mutate != nil {
				tt.mutate(&c)
			}
			before := p.Count()
			rc, err := newSender(t, c).Send(context.Background(), tt.msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := p.Requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("peer got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/2010-04-01/Accounts/"+p.AccountSID+"/Messages.json" {
				t.Errorf("request = %s %s", r.Method, r.Path)
			}
			if r.ContentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q", r.ContentType)
			}
			if r.User != tt.wantUser || !r.Authorized {
				t.Errorf("Basic user = %q (authorized %v), want %q", r.User, r.Authorized, tt.wantUser)
			}
			if r.To != tt.msg.Address || r.Body != tt.msg.Text {
				t.Errorf("To, Body = %q, %q; want %q, %q", r.To, r.Body, tt.msg.Address, tt.msg.Text)
			}
			checkField(t, r.Form, "From", tt.wantFrom)
			checkField(t, r.Form, "MessagingServiceSid", tt.wantService)
			if got := r.Form["StatusCallback"]; fmt.Sprint(got) != fmt.Sprint(tt.wantCB) {
				t.Errorf("StatusCallback = %q, want %q", got, tt.wantCB)
			}
			want := channels.Receipt{ProviderID: r.SID, Segments: tt.wantSegs, Status: tt.wantStatus}
			if rc != want || len(r.SID) != 34 {
				t.Errorf("receipt = %+v, want %+v (peer SID %q)", rc, want, r.SID)
			}
		})
	}
}

// checkField asserts that form has key with value want, or no key at all
// when want is empty.
func checkField(t *testing.T, form url.Values, key, want string) {
	t.Helper()
	got, ok := form[key]
	switch {
	case want == "" && ok:
		t.Errorf("%s = %q, want no such field", key, got)
	case want != "" && (len(got) != 1 || got[0] != want):
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func TestSender_Send_Concurrent(t *testing.T) {
	p := channeltest.NewTwilioPeer(t)
	s := newSender(t, peerConfig(p))
	const n = 40
	sids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rc, err := s.Send(context.Background(), channels.Message{
				DeliveryID: int64(i + 1), Address: fmt.Sprintf("+4474001234%02d", i), Text: "Prescriptions: use paper",
			})
			if err != nil {
				t.Errorf("Send %d: %v", i, err)
			}
			sids[i] = rc.ProviderID
		})
	}
	wg.Wait()
	reqs := p.Requests()
	if len(reqs) != n {
		t.Fatalf("peer got %d requests, want %d", len(reqs), n)
	}
	peerSID := map[string]string{} // To -> SID the peer issued
	for _, r := range reqs {
		peerSID[r.To] = r.SID
	}
	for i, sid := range sids {
		if to := fmt.Sprintf("+4474001234%02d", i); sid == "" || peerSID[to] != sid {
			t.Errorf("message %d: receipt SID %q, peer issued %q for %s", i, sid, peerSID[to], to)
		}
	}
}

func TestSender_Send_BasePathPrefix(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Host+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","num_segments":"1"}`))
	}))
	t.Cleanup(srv.Close)
	c := twilio.Config{AccountSID: testAccount, AuthToken: testToken, From: "+447400123456", APIBaseURL: srv.URL + "/relay/twilio/"}
	if _, err := newSender(t, c).Send(context.Background(), channels.Message{Address: "+447400123456", Text: "x"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := srv.Listener.Addr().String() + " /relay/twilio/2010-04-01/Accounts/" + testAccount + "/Messages.json"
	if len(got) != 1 || got[0] != want {
		t.Errorf("server saw %q, want [%q]", got, want)
	}
}

func TestSender_Send_NotSent(t *testing.T) {
	p := channeltest.NewTwilioPeer(t)
	s := newSender(t, peerConfig(p))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		msg        channels.Message
		wantReason channels.Reason
		wantRetry  bool
	}{
		{"cancelled context", cancelled, channels.Message{Address: "+447400123456", Text: "x"}, channels.ReasonTimeout, true},
		{"no address", context.Background(), channels.Message{Text: "x"}, channels.ReasonBadAddress, false},
		{"no text", context.Background(), channels.Message{Address: "+447400123456"}, channels.ReasonRejected, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Send(tt.ctx, tt.msg)
			reason, retry, _ := channels.Classify(err)
			if reason != tt.wantReason || retry != tt.wantRetry {
				t.Errorf("Classify(%v) = %s, %v; want %s, %v", err, reason, retry, tt.wantReason, tt.wantRetry)
			}
			if channels.MaybeSent(err) {
				t.Errorf("MaybeSent(%v) = true for a request never sent", err)
			}
		})
	}
	if n := p.Count(); n != 0 {
		t.Errorf("peer got %d requests, want 0", n)
	}
}

func TestSender_NameKind_FromConfig(t *testing.T) {
	s := newSender(t, validConfig())
	if s.Name() != "clinician-sms" || s.Kind() != channels.KindSMS {
		t.Errorf("Name, Kind = %q, %q", s.Name(), s.Kind())
	}
}
