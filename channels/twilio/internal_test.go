package twilio

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/internal/fields"
)

// Validate refuses credentials twilio-go would refuse, so this reaches
// twilio-go's local check by replacing them after New.
func TestSender_Send_LocalCredentialCheck(t *testing.T) {
	p := channeltest.NewTwilioPeer(t)
	s, err := New("sms", Config{AccountSID: p.AccountSID, AuthToken: fields.Secret(p.AuthToken), From: p.From, APIBaseURL: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	s.creds = client.NewCredentials(p.AccountSID, "has space")
	s.secrets = secretForms(p.AccountSID, "has space")
	_, err = s.Send(context.Background(), channels.Message{Address: "+447400123456", Text: "x"})
	reason, retry, _ := channels.Classify(err)
	if reason != channels.ReasonConfig || retry || channels.Code(err) != "21224" {
		t.Errorf("Classify = %s, %v, code %q; want config, permanent, 21224: %v", reason, retry, channels.Code(err), err)
	}
	if n := p.Count(); n != 0 {
		t.Errorf("peer got %d requests, want 0", n)
	}
}

func TestRetryAfterDelay_Table(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999999", maxRetryAfter * time.Second},
	}
	for _, tt := range tests {
		if got := retryAfterDelay(tt.in, now); got != tt.want {
			t.Errorf("retryAfterDelay(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFindSID_Table(t *testing.T) {
	const sid = "SM0123456789abcdef0123456789abcdef"
	tests := []struct{ in, want string }{
		{"", ""},
		{"SMS sent", ""},
		{`xSMSM` + sid + `"`, sid},
		{sid[:30], ""},
	}
	for _, tt := range tests {
		if got := findSID(tt.in); got != tt.want {
			t.Errorf("findSID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaskNumber_Table(t *testing.T) {
	tests := []struct{ in, want string }{{"+447400123456", "+44********56"}, {"12345", "*****"}}
	for _, tt := range tests {
		if got := maskNumber(tt.in); got != tt.want {
			t.Errorf("maskNumber(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
