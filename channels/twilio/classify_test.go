package twilio_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/channels/twilio"
)

const recipient = "+447400123456"

// classifyCase is one scripted peer answer and how Send must classify it.
type classifyCase struct {
	name       string
	resp       *channeltest.TwilioResponse // nil: the peer answers normally
	echo       bool                        // answer 400 with the peer's credentials in the message
	config     func(*twilio.Config, *channeltest.TwilioPeer)
	reason     channels.Reason
	retry      bool
	retryAfter time.Duration
	code       string
	maybeSent  bool // the request reached the peer before the failure
}

func apiErr(status, code int) *channeltest.TwilioResponse {
	return channeltest.TwilioError(status, code, "The 'To' number "+recipient+" cannot be messaged.")
}

func withHeader(r *channeltest.TwilioResponse, k, v string) *channeltest.TwilioResponse {
	r.Header = http.Header{k: {v}}
	return r
}

// clock is the fixed time the Sender uses to read Retry-After dates.
var clock = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func classifyCases() []classifyCase {
	perm := func(name string, status, code int, reason channels.Reason) classifyCase {
		return classifyCase{name: name, resp: apiErr(status, code), reason: reason, code: strconv.Itoa(code)}
	}
	return []classifyCase{
		perm("21211 invalid To", 400, 21211, channels.ReasonBadAddress),
		perm("21612 To unreachable", 400, 21612, channels.ReasonBadAddress),
		perm("21614 To not mobile", 400, 21614, channels.ReasonBadAddress),
		perm("21635 To landline", 400, 21635, channels.ReasonBadAddress),
		perm("21217 number not valid", 400, 21217, channels.ReasonBadAddress),
		perm("21610 opted out", 400, 21610, channels.ReasonOptedOut),
		perm("20003 in JSON", 401, 20003, channels.ReasonAuth),
		perm("20404 not found", 404, 20404, channels.ReasonConfig),
		perm("21606 From cannot send", 400, 21606, channels.ReasonConfig),
		perm("21408 geo permission", 400, 21408, channels.ReasonConfig),
		perm("21212 invalid From", 400, 21212, channels.ReasonConfig),
		perm("21401 From not owned", 400, 21401, channels.ReasonConfig),
		perm("21603 From missing", 400, 21603, channels.ReasonConfig),
		perm("21659 From not Twilio", 400, 21659, channels.ReasonConfig),
		perm("30034 A2P unregistered", 400, 30034, channels.ReasonConfig),
		perm("21602 no body", 400, 21602, channels.ReasonRejected),
		perm("21617 body too long", 400, 21617, channels.ReasonRejected),
		perm("21407 other 4xx code", 400, 21407, channels.ReasonRejected),
		perm("unknown 403", 403, 20008, channels.ReasonRejected),
		{name: "wrong credentials", config: func(c *twilio.Config, p *channeltest.TwilioPeer) { c.AuthToken = "wrongToken0123" },
			reason: channels.ReasonAuth, code: "20003"},
		{name: "wrong account", config: func(c *twilio.Config, p *channeltest.TwilioPeer) { c.AccountSID = testAccount[:33] + "0" },
			reason: channels.ReasonAuth, code: "20003"},
		{name: "429 with Retry-After 7", resp: withHeader(apiErr(429, 20429), "Retry-After", "7"),
			reason: channels.ReasonRateLimited, retry: true, retryAfter: 7 * time.Second, code: "20429"},
		{name: "429 without Retry-After", resp: apiErr(429, 20429),
			reason: channels.ReasonRateLimited, retry: true, code: "20429"},
		{name: "20429 on a 400", resp: apiErr(400, 20429),
			reason: channels.ReasonRateLimited, retry: true, code: "20429"},
		{name: "Retry-After as a date", resp: withHeader(apiErr(429, 20429), "Retry-After", clock.Add(90*time.Second).Format(http.TimeFormat)),
			reason: channels.ReasonRateLimited, retry: true, retryAfter: 90 * time.Second, code: "20429"},
		{name: "500 JSON", resp: apiErr(500, 20500), reason: channels.ReasonServer, retry: true, code: "20500"},
		{name: "503 JSON with Retry-After", resp: withHeader(apiErr(503, 20503), "Retry-After", "120"),
			reason: channels.ReasonServer, retry: true, retryAfter: 120 * time.Second, code: "20503"},
		{name: "HTML 503 from a proxy", resp: &channeltest.TwilioResponse{Status: 503, Body: "<html><body>Service Unavailable</body></html>"},
			reason: channels.ReasonServer, retry: true, code: "http_503"},
		{name: "HTML 502 with Retry-After", resp: withHeader(&channeltest.TwilioResponse{Status: 502, Body: "<html>bad gateway</html>"}, "Retry-After", "3"),
			reason: channels.ReasonServer, retry: true, retryAfter: 3 * time.Second, code: "http_502"},
		{name: "plain 429", resp: withHeader(&channeltest.TwilioResponse{Status: 429, Body: "slow down", ContentType: "text/plain"}, "Retry-After", "5"),
			reason: channels.ReasonRateLimited, retry: true, retryAfter: 5 * time.Second, code: "http_429"},
		{name: "HTML 404: not Twilio", resp: &channeltest.TwilioResponse{Status: 404, Body: "<html>not found</html>"},
			reason: channels.ReasonConfig, code: "http_404"},
		{name: "HTML 407 from a proxy", resp: &channeltest.TwilioResponse{Status: 407, Body: "<html>proxy auth</html>"},
			reason: channels.ReasonAuth, code: "http_407"},
		{name: "redirect", resp: withHeader(&channeltest.TwilioResponse{Status: 302, Body: ""}, "Location", "https://api.twilio.com/"),
			reason: channels.ReasonConfig, code: "http_302"},
		{name: "timeout: peer hangs", resp: &channeltest.TwilioResponse{Hang: true},
			config: func(c *twilio.Config, _ *channeltest.TwilioPeer) { c.Timeout = 50 * time.Millisecond },
			reason: channels.ReasonTimeout, retry: true, maybeSent: true},
		{name: "dropped connection", resp: &channeltest.TwilioResponse{Drop: true},
			reason: channels.ReasonNetwork, retry: true, maybeSent: true},
	}
}

// countingDialer makes tr count the connections it dials into n.
func countingDialer(tr *http.Transport, n *atomic.Int32) *http.Transport {
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

// sendCase runs one case against a fresh peer and returns Send's error and
// the peer's request count.
func sendCase(t *testing.T, tc classifyCase) (*channeltest.TwilioPeer, error) {
	t.Helper()
	var p *channeltest.TwilioPeer
	p = channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(int, url.Values) *channeltest.TwilioResponse {
		if tc.echo {
			basic := base64.StdEncoding.EncodeToString([]byte(p.AccountSID + ":" + p.AuthToken))
			return channeltest.TwilioError(400, 21211, "echo: token="+p.AuthToken+" Authorization: Basic "+basic)
		}
		return tc.resp
	}))
	c := peerConfig(p)
	if tc.config != nil {
		tc.config(&c, p)
	}
	s := newSender(t, c, twilio.WithClock(func() time.Time { return clock }))
	rc, err := s.Send(context.Background(), channels.Message{DeliveryID: 7, Address: recipient, Text: "Out-of-hours appointments suspended"})
	if err == nil {
		t.Fatalf("Send succeeded with %+v, want an error", rc)
	}
	return p, err
}

func TestSender_Send_Classify(t *testing.T) {
	for _, tc := range classifyCases() {
		t.Run(tc.name, func(t *testing.T) {
			p, err := sendCase(t, tc)
			t.Logf("error: %v", err)
			reason, retry, after := channels.Classify(err)
			if reason != tc.reason || retry != tc.retry || after != tc.retryAfter {
				t.Errorf("Classify = (%s, %v, %v), want (%s, %v, %v)\nerror: %v",
					reason, retry, after, tc.reason, tc.retry, tc.retryAfter, err)
			}
			if code := channels.Code(err); code != tc.code {
				t.Errorf("Code = %q, want %q", code, tc.code)
			}
			// A lost answer to a request the peer read leaves the message
			// in doubt; an answer, even an error, settles it.
			if got := channels.MaybeSent(err); got != tc.maybeSent {
				t.Errorf("MaybeSent = %v, want %v: %v", got, tc.maybeSent, err)
			}
			// Exactly one request went out: the Sender and net/http never
			// resend a POST, even after a timeout or a dropped connection.
			if n := p.Count(); n != 1 {
				t.Errorf("peer got %d requests, want 1", n)
			}
		})
	}
}

func TestSender_Send_ErrorsHideSecrets(t *testing.T) {
	cases := append(classifyCases(), classifyCase{name: "server echoes credentials", echo: true})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := sendCase(t, tc)
			basic := base64.StdEncoding.EncodeToString([]byte(p.AccountSID + ":" + p.AuthToken))
			banned := []string{p.AuthToken, basic, recipient, recipient[1:]}
			if !tc.echo { // the echo case's server text names the header itself
				banned = append(banned, "Authorization", "Basic ")
			} else if !strings.Contains(err.Error(), "<secret>") {
				t.Errorf("echoed credentials not redacted: %v", err)
			}
			for e := err; e != nil; e = errors.Unwrap(e) {
				msg := e.Error()
				for _, bad := range banned {
					if strings.Contains(msg, bad) {
						t.Errorf("error text contains %q: %s", bad, msg)
					}
				}
			}
		})
	}
}

func TestSender_Send_CancelledInFlight(t *testing.T) {
	arrived := make(chan struct{})
	p := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(int, url.Values) *channeltest.TwilioResponse {
		close(arrived)
		return &channeltest.TwilioResponse{Hang: true}
	}))
	s := newSender(t, peerConfig(p))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := s.Send(ctx, channels.Message{Address: recipient, Text: "x"})
	if reason, retry, _ := channels.Classify(err); reason != channels.ReasonTimeout || !retry {
		t.Errorf("Classify = %s, %v; want timeout, retryable: %v", reason, retry, err)
	}
	if !channels.MaybeSent(err) {
		t.Errorf("MaybeSent = false after the peer read the request: %v", err)
	}
	if n := p.Count(); n != 1 {
		t.Errorf("peer got %d requests, want 1", n)
	}
}

func TestSender_Send_AcceptedUnparsed(t *testing.T) {
	const sid = "SMfeedfacefeedfacefeedfacefeedface"
	tests := []struct {
		name string
		resp *channeltest.TwilioResponse
		want channels.Receipt
	}{
		{"num_segments as a number", &channeltest.TwilioResponse{Status: 201, ContentType: "application/json",
			Body: `{"sid":"` + sid + `","status":"queued","num_segments":2}`},
			channels.Receipt{ProviderID: sid, Segments: 2, Status: twilio.StatusAcceptedUnparsed}},
		{"truncated JSON", &channeltest.TwilioResponse{Status: 201, ContentType: "application/json",
			Body: `{"account_sid":"AC0","sid":"` + sid + `","sta`},
			channels.Receipt{ProviderID: sid, Status: twilio.StatusAcceptedUnparsed}},
		{"HTML body", &channeltest.TwilioResponse{Status: 201, Body: "<html>created</html>"},
			channels.Receipt{Status: twilio.StatusAcceptedUnparsed}},
		{"JSON without sid", &channeltest.TwilioResponse{Status: 201, JSON: map[string]string{"status": "queued"}},
			channels.Receipt{Status: twilio.StatusAcceptedUnparsed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(int, url.Values) *channeltest.TwilioResponse {
				return tt.resp
			}))
			rc, err := newSender(t, peerConfig(p)).Send(context.Background(), channels.Message{Address: recipient, Text: "x"})
			if err != nil {
				t.Fatalf("Send: %v (a 201 must never be retried)", err)
			}
			if rc != tt.want {
				t.Errorf("receipt = %+v, want %+v", rc, tt.want)
			}
		})
	}
}

// TestSender_Send_ErrorResponseFreesConnection checks that error answers do
// not pin connections: twilio-go never closes an error body, so without the
// transport reading it each failed send would dial a new connection.
func TestSender_Send_ErrorResponseFreesConnection(t *testing.T) {
	var conns atomic.Int32
	p := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(int, url.Values) *channeltest.TwilioResponse {
		return apiErr(400, 21211)
	}))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: countingDialer(tr, &conns)}
	s := newSender(t, peerConfig(p), twilio.WithHTTPClient(hc))
	for range 5 {
		if _, err := s.Send(context.Background(), channels.Message{Address: recipient, Text: "x"}); err == nil {
			t.Fatal("Send succeeded, want 21211")
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential failed sends opened %d connections, want 1", n)
	}
}

func TestNew_HTTPClientTimeoutWins(t *testing.T) {
	p := channeltest.NewTwilioPeer(t, channeltest.WithTwilioRespond(func(int, url.Values) *channeltest.TwilioResponse {
		return &channeltest.TwilioResponse{Hang: true}
	}))
	c := peerConfig(p)
	c.Timeout = time.Hour // would hang the test if it applied
	s := newSender(t, c, twilio.WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
	_, err := s.Send(context.Background(), channels.Message{Address: recipient, Text: "x"})
	if reason, _, _ := channels.Classify(err); reason != channels.ReasonTimeout {
		t.Errorf("Classify = %s, want timeout: %v", reason, err)
	}
}

func TestSender_Send_ConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	c := twilio.Config{AccountSID: testAccount, AuthToken: testToken, From: "+447400123456", APIBaseURL: base}
	_, err := newSender(t, c).Send(context.Background(), channels.Message{Address: recipient, Text: "x"})
	if reason, retry, _ := channels.Classify(err); reason != channels.ReasonNetwork || !retry {
		t.Errorf("Classify = %s, %v; want network, retryable: %v", reason, retry, err)
	}
	if err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Errorf("error does not say the request was not sent: %v", err)
	}
	if channels.MaybeSent(err) {
		t.Errorf("MaybeSent = true, but nothing was sent: %v", err)
	}
}

func TestSender_Send_TwilioErrorInChain(t *testing.T) {
	_, err := sendCase(t, classifyCase{resp: apiErr(400, 21211)})
	var te *client.TwilioRestError
	if !errors.As(err, &te) || te.Code != 21211 || te.Status != 400 {
		t.Fatalf("errors.As(*client.TwilioRestError) = %+v from %v", te, err)
	}
	if strings.Contains(te.Message, recipient) || !strings.Contains(te.Message, "+44") {
		t.Errorf("TwilioRestError.Message = %q, want the number masked", te.Message)
	}
}
