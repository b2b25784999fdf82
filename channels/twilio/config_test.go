package twilio_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/twilio"
	"github.com/crier-dev/crier/internal/fields"
)

const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testToken   = "cfgAuthToken0123456789abcdef0123"
	testKeySID  = "SK0123456789abcdef0123456789abcdef"
	testKeySec  = "cfgKeySecret0123456789abcdef0123"
	testService = "MG0123456789abcdef0123456789abcdef"
)

func validConfig() twilio.Config {
	return twilio.Config{AccountSID: testAccount, AuthToken: testToken, From: "+447400123456"}
}

// problem is one expected field error: its yaml key and the value it shows.
type problem struct{ path, value string }

func TestConfig_Validate_Table(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*twilio.Config)
		want   []problem
	}{
		{"valid from", func(*twilio.Config) {}, nil},
		{"valid messaging service only", func(c *twilio.Config) { c.From, c.MessagingServiceSID = "", testService }, nil},
		{"valid both senders", func(c *twilio.Config) { c.MessagingServiceSID = testService }, nil},
		{"valid api key", func(c *twilio.Config) { c.AuthToken, c.APIKeySID, c.APIKeySecret = "", testKeySID, testKeySec }, nil},
		{"valid sender id", func(c *twilio.Config) { c.From = "NHS 111" }, nil},
		{"valid loopback http base", func(c *twilio.Config) { c.APIBaseURL = "http://127.0.0.1:8080" }, nil},
		{"valid localhost base with prefix", func(c *twilio.Config) { c.APIBaseURL = "http://localhost:9/twilio" }, nil},
		{"valid callback with query", func(c *twilio.Config) { c.StatusCallbackURL = "https://hooks.example.org/twilio/status?tenant=nhs" }, nil},
		{"missing account_sid", func(c *twilio.Config) { c.AccountSID = "" }, []problem{{"account_sid", ""}}},
		{"bad account_sid", func(c *twilio.Config) { c.AccountSID = "AC123" }, []problem{{"account_sid", "AC123"}}},
		{"account_sid not hex", func(c *twilio.Config) { c.AccountSID = "ACzz23456789abcdef0123456789abcdef" },
			[]problem{{"account_sid", "ACzz23456789abcdef0123456789abcdef"}}},
		{"no credentials", func(c *twilio.Config) { c.AuthToken = "" }, []problem{{"auth_token", ""}}},
		{"token file gave nothing", func(c *twilio.Config) { c.AuthToken, c.AuthTokenFile = "", "secrets/twilio_token" },
			[]problem{{"auth_token_file", "secrets/twilio_token"}}},
		{"token with newline", func(c *twilio.Config) { c.AuthToken = testToken + "\n" }, []problem{{"auth_token", ""}}},
		{"token and api key", func(c *twilio.Config) { c.APIKeySID, c.APIKeySecret = testKeySID, testKeySec }, []problem{{"auth_token", ""}}},
		{"api key without secret", func(c *twilio.Config) { c.AuthToken, c.APIKeySID = "", testKeySID }, []problem{{"api_key_secret", ""}}},
		{"api key secret file gave nothing", func(c *twilio.Config) {
			c.AuthToken, c.APIKeySID, c.APIKeySecretFile = "", testKeySID, "secrets/key"
		}, []problem{{"api_key_secret_file", "secrets/key"}}},
		{"api secret without key", func(c *twilio.Config) { c.AuthToken, c.APIKeySecret = "", testKeySec }, []problem{{"api_key_sid", ""}}},
		{"bad api_key_sid", func(c *twilio.Config) { c.AuthToken, c.APIKeySID, c.APIKeySecret = "", "SKnope", testKeySec },
			[]problem{{"api_key_sid", "SKnope"}}},
		{"api secret with quote", func(c *twilio.Config) { c.AuthToken, c.APIKeySID, c.APIKeySecret = "", testKeySID, `"`+testKeySec },
			[]problem{{"api_key_secret", ""}}},
		{"no sender", func(c *twilio.Config) { c.From = "" }, []problem{{"from", ""}}},
		{"national number", func(c *twilio.Config) { c.From = "07400 123456" }, []problem{{"from", "07400 123456"}}},
		{"sender id too long", func(c *twilio.Config) { c.From = "NHSResilience" }, []problem{{"from", "NHSResilience"}}},
		{"sender id without letter", func(c *twilio.Config) { c.From = "12345" }, []problem{{"from", "12345"}}},
		{"sender id with symbol", func(c *twilio.Config) { c.From = "NHS-111!" }, []problem{{"from", "NHS-111!"}}},
		{"e164 too long", func(c *twilio.Config) { c.From = "+4474001234567890" }, []problem{{"from", "+4474001234567890"}}},
		{"bad messaging_service_sid", func(c *twilio.Config) { c.MessagingServiceSID = "MG1" }, []problem{{"messaging_service_sid", "MG1"}}},
		{"ftp base", func(c *twilio.Config) { c.APIBaseURL = "ftp://api.twilio.com" }, []problem{{"api_base_url", "ftp://api.twilio.com"}}},
		{"relative base", func(c *twilio.Config) { c.APIBaseURL = "api.twilio.com" }, []problem{{"api_base_url", "api.twilio.com"}}},
		{"unparsable base", func(c *twilio.Config) { c.APIBaseURL = "https://api twilio.com" }, []problem{{"api_base_url", "https://api twilio.com"}}},
		{"plain http base", func(c *twilio.Config) { c.APIBaseURL = "http://api.twilio.com" }, []problem{{"api_base_url", "http://api.twilio.com"}}},
		{"base with password", func(c *twilio.Config) { c.APIBaseURL = "https://u:hunter22@api.twilio.com" }, []problem{{"api_base_url", ""}}},
		{"base with query", func(c *twilio.Config) { c.APIBaseURL = "https://api.twilio.com?x=1" }, []problem{{"api_base_url", "https://api.twilio.com?x=1"}}},
		{"http callback", func(c *twilio.Config) { c.StatusCallbackURL = "http://hooks.example.org/s" },
			[]problem{{"status_callback_url", "http://hooks.example.org/s"}}},
		{"callback uses d", func(c *twilio.Config) { c.StatusCallbackURL = "https://hooks.example.org/s?d=1" },
			[]problem{{"status_callback_url", "https://hooks.example.org/s?d=1"}}},
		{"callback with password", func(c *twilio.Config) { c.StatusCallbackURL = "https://u:hunter22@hooks.example.org/s" },
			[]problem{{"status_callback_url", ""}}},
		{"callback with fragment", func(c *twilio.Config) { c.StatusCallbackURL = "https://hooks.example.org/s#x" },
			[]problem{{"status_callback_url", "https://hooks.example.org/s#x"}}},
		{"negative timeout", func(c *twilio.Config) { c.Timeout = -time.Second }, []problem{{"timeout", "-1s"}}},
		{"everything at once", func(c *twilio.Config) {
			*c = twilio.Config{AccountSID: "x", From: "0", APIBaseURL: "ftp://x", Timeout: -1}
		}, []problem{{"account_sid", "x"}, {"auth_token", ""}, {"from", "0"}, {"api_base_url", "ftp://x"}, {"timeout", "-1ns"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			got := c.Validate()
			if len(got) != len(tt.want) {
				t.Fatalf("Validate() = %d problems, want %d:\n%v", len(got), len(tt.want), got.Err())
			}
			for i, w := range tt.want {
				if got[i].Path != w.path || got[i].Value != w.value {
					t.Errorf("problem %d = (%q, %q), want (%q, %q): %v", i, got[i].Path, got[i].Value, w.path, w.value, got[i])
				}
				if got[i].Msg == "" {
					t.Errorf("problem %d has no message saying how to fix it", i)
				}
			}
			if err := got.Err(); err != nil {
				for _, s := range []string{testToken, testKeySec, "hunter22"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error shows a secret value: %v", err)
					}
				}
			}
		})
	}
}

func TestConfig_Defaults_FillsZeroOnly(t *testing.T) {
	var c twilio.Config
	c.Defaults()
	if c.APIBaseURL != "https://api.twilio.com" || c.Timeout != 10*time.Second {
		t.Errorf("Defaults() = %q, %v", c.APIBaseURL, c.Timeout)
	}
	c = twilio.Config{APIBaseURL: "http://127.0.0.1:1", Timeout: time.Second}
	c.Defaults()
	if c.APIBaseURL != "http://127.0.0.1:1" || c.Timeout != time.Second {
		t.Errorf("Defaults() overwrote set values: %q, %v", c.APIBaseURL, c.Timeout)
	}
}

func TestConfig_OneWay_Table(t *testing.T) {
	tests := []struct {
		from string
		want bool
	}{{"+447400123456", false}, {"NHS 111", true}, {"NHSAlerts", true}, {"", false}}
	for _, tt := range tests {
		if got := (twilio.Config{From: tt.from}).OneWay(); got != tt.want {
			t.Errorf("OneWay(from=%q) = %v, want %v", tt.from, got, tt.want)
		}
	}
}

func TestNew_InvalidConfig_ReturnsFieldList(t *testing.T) {
	c := validConfig()
	c.AccountSID = "AC123"
	c.From = ""
	_, err := twilio.New("clinician-sms", c)
	l, ok := fields.AsList(err)
	if !ok || len(l) != 2 || l[0].Path != "account_sid" || l[1].Path != "from" {
		t.Fatalf("New() error = %v, want a fields.List for account_sid and from", err)
	}
	if _, err := twilio.New("", validConfig()); err == nil {
		t.Error("New() with empty name succeeded")
	}
}
