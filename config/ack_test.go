package config_test

import (
	"strings"
	"testing"

	"github.com/crier-dev/crier/config"
)

// ackYAML is a config with two Twilio channels, one sending from an
// alphanumeric sender ID (one-way, common in the UK) and one from a long
// code, and an alert rule that asks for acknowledgement. @RULE@ is the
// rule's channels and ack block; @TOP@ replaces the server and webhooks
// sections.
const ackYAML = `@TOP@
channels:
  uk-sms:
    driver: twilio
    twilio:
      account_sid: AC0123456789abcdef0123456789abcdef
      auth_token: ${TWILIO_AUTH_TOKEN}
      from: NHS Alerts
  long-sms:
    driver: twilio
    twilio:
      account_sid: AC0123456789abcdef0123456789abcdef
      auth_token: ${TWILIO_AUTH_TOKEN}
      from: "+447400999000"
  service-sms:
    driver: twilio
    twilio:
      account_sid: AC0123456789abcdef0123456789abcdef
      auth_token: ${TWILIO_AUTH_TOKEN}
      messaging_service_sid: MG0123456789abcdef0123456789abcdef
  mail:
    driver: sandbox
    sandbox:
      kind: email
subscribers:
  inline:
    - id: dr-morgan
      name: Dr Eleri Morgan
      roles: [clinician]
      phone: "+447400123410"
      email: eleri.morgan@example.org
audiences:
  clinicians:
    roles: [clinician]
alerts:
  clinicians-sms:
    audience: clinicians
@RULE@
`

const ackTop = `server:
  public_url: https://crier.example.org
webhooks:
  twilio_auth_token: ${TWILIO_AUTH_TOKEN}
  ack_secret: ${ACK_SECRET}`

var ackEnv = envOf(map[string]string{"TWILIO_AUTH_TOKEN": "abcdef0123456789abcdef0123456789", "ACK_SECRET": "0123456789abcdef0123456789abcdef0123"})

// TestConfig_Validate_AckOneWaySender proves config validation refuses SMS
// acknowledgement on a one-way sender (an alphanumeric sender ID cannot
// receive the ACK reply), wherever the channel appears in the rule, names
// the channel, the sender and the fix on the rule's ack line, and accepts
// two-way senders and one-way senders on rules that need no reply.
func TestConfig_Validate_AckOneWaySender(t *testing.T) {
	cases := []struct {
		name    string
		top     string
		rule    string
		path    string // "" = no problem expected
		value   string
		wantMsg []string
		marker  string // the line the problem is reported on
	}{
		{"one-way sender acknowledging", ackTop, "    channels: [uk-sms]\n    ack:\n      within: 15m",
			"alerts.clinicians-sms.ack", "uk-sms", []string{`alphanumeric sender ID "NHS Alerts"`, "cannot receive replies", "long code or a messaging service"}, "    ack:"},
		{"one-way sender on the escalation ladder", ackTop, "    channels: [long-sms]\n    ack:\n      within: 15m\n      escalate: [mail, uk-sms]",
			"alerts.clinicians-sms.ack", "uk-sms", []string{"NHS Alerts", "cannot receive replies"}, "    ack:"},
		{"long code", ackTop, "    channels: [long-sms]\n    ack:\n      within: 15m", "", "", nil, ""},
		{"messaging service", ackTop, "    channels: [service-sms]\n    ack:\n      within: 15m\n      escalate: [mail]", "", "", nil, ""},
		{"one-way sender without acknowledgement", ackTop, "    channels: [uk-sms]", "", "", nil, ""},
		{"SMS acknowledgement without the Twilio token", "server:\n  public_url: https://crier.example.org\nwebhooks:\n  ack_secret: ${ACK_SECRET}",
			"    channels: [long-sms]\n    ack:\n      within: 15m", "alerts.clinicians-sms.ack", "long-sms", []string{"webhooks.twilio_auth_token"}, "    ack:"},
		{"Twilio token without a public URL", "webhooks:\n  twilio_auth_token: ${TWILIO_AUTH_TOKEN}\n  ack_secret: ${ACK_SECRET}",
			"    channels: [long-sms]", "server.public_url", "", []string{"webhooks.twilio_auth_token", "signs the public URL"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			yaml := strings.NewReplacer("@TOP@", tc.top, "@RULE@", tc.rule).Replace(ackYAML)
			_, err := config.Parse([]byte(yaml), t.TempDir(), ackEnv)
			l := problems(t, err)
			if tc.path == "" {
				if len(l) != 0 {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				return
			}
			var hit bool
			for _, e := range l {
				if e.Path != tc.path || e.Value != tc.value {
					continue
				}
				hit = true
				for _, w := range tc.wantMsg {
					if !strings.Contains(e.Msg, w) {
						t.Errorf("%s: %q does not say %q", e.Path, e.Msg, w)
					}
				}
				if tc.marker != "" {
					if line := lineOf(t, yaml, tc.marker); e.Line != line {
						t.Errorf("%s reported on line %d, want %d", e.Path, e.Line, line)
					}
				}
			}
			if !hit {
				t.Fatalf("no problem at %s for %q:\n%v", tc.path, tc.value, err)
			}
			if strings.Contains(err.Error(), "abcdef0123456789abcdef0123456789") {
				t.Error("a problem shows the auth token")
			}
		})
	}
}
