package slack

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/internal/fields"
)

type classCase struct {
	name   string
	resp   *channeltest.SlackResponse // scripted answer to the first request
	reason channels.Reason
	retry  bool
	after  time.Duration
	code   string
}

func htmlPage(status int) *channeltest.SlackResponse {
	return &channeltest.SlackResponse{Status: status, Body: "<html><body><h1>" + http.StatusText(status) + "</h1></body></html>"}
}

// commonCases are answers both endpoints can give.
func commonCases() []classCase {
	return []classCase{
		{"429 retry-after 7", channeltest.SlackRateLimited("7"), channels.ReasonRateLimited, true, 7 * time.Second, "429"},
		{"429 without retry-after", channeltest.SlackRateLimited(""), channels.ReasonRateLimited, true, 0, "429"},
		{"429 retry-after date", channeltest.SlackRateLimited("Wed, 21 Oct 2015 07:28:00 GMT"), channels.ReasonRateLimited, true, 0, "429"},
		{"500", htmlPage(500), channels.ReasonServer, true, 0, "500"},
		{"HTML 503", htmlPage(503), channels.ReasonServer, true, 0, "503"},
		{"timeout", &channeltest.SlackResponse{Hang: true}, channels.ReasonTimeout, true, 0, ""},
		{"dropped connection", &channeltest.SlackResponse{Drop: true}, channels.ReasonNetwork, true, 0, ""},
	}
}

func TestSender_Send_Classification(t *testing.T) {
	cases := commonCases()
	for _, w := range []struct {
		word   string
		reason channels.Reason
		retry  bool
	}{
		{"channel_not_found", channels.ReasonBadAddress, false},
		{"not_in_channel", channels.ReasonBadAddress, false},
		{"is_archived", channels.ReasonBadAddress, false},
		{"invalid_auth", channels.ReasonAuth, false},
		{"not_authed", channels.ReasonAuth, false},
		{"account_inactive", channels.ReasonAuth, false},
		{"token_revoked", channels.ReasonAuth, false},
		{"no_permission", channels.ReasonAuth, false},
		{"restricted_action", channels.ReasonAuth, false},
		{"missing_scope", channels.ReasonConfig, false},
		{"msg_too_long", channels.ReasonRejected, false},
		{"invalid_blocks", channels.ReasonRejected, false},
		{"no_text", channels.ReasonRejected, false},
		{"invalid_arguments", channels.ReasonRejected, false},
		{"some_future_error", channels.ReasonRejected, false},
		{"ratelimited", channels.ReasonRateLimited, true},
		{"internal_error", channels.ReasonServer, true},
		{"fatal_error", channels.ReasonServer, true},
		{"service_unavailable", channels.ReasonServer, true},
		{"request_timeout", channels.ReasonServer, true},
	} {
		cases = append(cases, classCase{w.word, channeltest.SlackError(w.word), w.reason, w.retry, 0, w.word})
	}
	cases = append(cases,
		classCase{"404 wrong api_url", htmlPage(404), channels.ReasonConfig, false, 0, "404"},
		classCase{"403", htmlPage(403), channels.ReasonAuth, false, 0, "403"},
		classCase{"400", htmlPage(400), channels.ReasonRejected, false, 0, "400"},
		classCase{"302 redirect", &channeltest.SlackResponse{Status: 302, Header: http.Header{"Location": {"http://127.0.0.1:1/elsewhere"}}},
			channels.ReasonConfig, false, 0, "302"},
		classCase{"200 with HTML", &channeltest.SlackResponse{Status: 200, Body: "<html>maintenance</html>"},
			channels.ReasonServer, true, 0, "invalid_response"},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			peer := channeltest.NewSlackPeer(t, channeltest.WithSlackRespond(func(int, channeltest.SlackPost) *channeltest.SlackResponse {
				return tt.resp
			}))
			s := newSender(t, peer, func(c *Config) { c.Timeout = 300 * time.Millisecond })
			_, err := s.Send(context.Background(), incidentMessage())
			checkClass(t, err, tt, peer.Token, "")
		})
	}
}

func TestSender_Send_ClassificationWrongToken(t *testing.T) {
	peer := channeltest.NewSlackPeer(t)
	s := newSender(t, peer, func(c *Config) { c.Token = "xoxb-wrong-token-0000" })
	_, err := s.Send(context.Background(), incidentMessage())
	checkClass(t, err, classCase{reason: channels.ReasonAuth, code: "invalid_auth"}, "xoxb-wrong-token-0000", "")
	if p := peer.Posts()[0]; p.Authorized || p.Error != "invalid_auth" {
		t.Fatalf("peer: authorized %v error %q", p.Authorized, p.Error)
	}
	if !channels.ReasonAuth.ChannelWide() {
		t.Fatal("auth must pause the channel")
	}
}

func TestSender_Send_ClassificationContext(t *testing.T) {
	peer := channeltest.NewSlackPeer(t, channeltest.WithSlackRespond(func(int, channeltest.SlackPost) *channeltest.SlackResponse {
		return &channeltest.SlackResponse{Hang: true}
	}))
	s := newSender(t, peer, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Send(ctx, incidentMessage())
	checkClass(t, err, classCase{reason: channels.ReasonTimeout, retry: true}, peer.Token, "")
}

func TestSender_Send_ClassificationWebhook(t *testing.T) {
	cases := append(commonCases(),
		classCase{"404 no_service", &channeltest.SlackResponse{Status: 404, Body: "no_service", ContentType: "text/plain"}, channels.ReasonConfig, false, 0, "404"},
		classCase{"403 action_prohibited", &channeltest.SlackResponse{Status: 403, Body: "action_prohibited", ContentType: "text/plain"}, channels.ReasonConfig, false, 0, "403"},
		classCase{"410 channel_is_archived", &channeltest.SlackResponse{Status: 410, Body: "channel_is_archived", ContentType: "text/plain"}, channels.ReasonConfig, false, 0, "410"},
		classCase{"400 invalid_payload", &channeltest.SlackResponse{Status: 400, Body: "invalid_payload", ContentType: "text/plain"}, channels.ReasonRejected, false, 0, "400"},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			peer := channeltest.NewSlackPeer(t, channeltest.WithSlackRespond(func(int, channeltest.SlackPost) *channeltest.SlackResponse {
				return tt.resp
			}))
			s, err := New("hook", Config{WebhookURL: fields.Secret(peer.WebhookURL), Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Send(context.Background(), incidentMessage())
			checkClass(t, err, tt, "", peer.WebhookURL)
		})
	}
}

func TestSender_Send_ClassificationRefused(t *testing.T) {
	// A port nobody listens on: bind, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hook := "http://" + addr + "/services/T0CRIER00/B0CRIER00/refusedsecret0123"
	tests := []struct {
		name string
		cfg  Config
	}{
		{"api", Config{Token: "xoxb-refused-token", APIURL: "http://" + addr + "/api/"}},
		{"webhook", Config{WebhookURL: fields.Secret(hook)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New("refused", tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Send(context.Background(), incidentMessage())
			checkClass(t, err, classCase{reason: channels.ReasonNetwork, retry: true}, "xoxb-refused-token", hook)
		})
	}
}

// checkClass asserts err's classification and that its text shows neither
// the token nor the webhook URL (nor the URL's secret path).
func checkClass(t *testing.T, err error, want classCase, token, hook string) {
	t.Helper()
	if err == nil {
		t.Fatal("Send succeeded")
	}
	reason, retry, after := channels.Classify(err)
	if reason != want.reason || retry != want.retry || after != want.after || channels.Code(err) != want.code {
		t.Errorf("Classify = (%s, retry %v, after %v, code %q), want (%s, %v, %v, %q)\nerr: %v",
			reason, retry, after, channels.Code(err), want.reason, want.retry, want.after, want.code, err)
	}
	msg := err.Error()
	secrets := []string{token}
	if hook != "" {
		u, _ := url.Parse(hook)
		secrets = append(secrets, hook, u.Path)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error shows a credential: %s", msg)
		}
	}
}
