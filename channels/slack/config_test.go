package slack

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/internal/fields"
)

func TestConfig_Validate_Table(t *testing.T) {
	const hook = "https://hooks.slack.com/services/T000/B000/SECRETPART123"
	tests := []struct {
		name  string
		cfg   Config
		paths []string // the yaml keys reported, in order
	}{
		{"token", Config{Token: "xoxb-1-2-abc"}, nil},
		{"token file", Config{TokenFile: "/run/secrets/slack"}, nil},
		{"webhook", Config{WebhookURL: hook}, nil},
		{"webhook file", Config{WebhookURLFile: "/run/secrets/hook"}, nil},
		{"loopback http api", Config{Token: "xoxb-1", APIURL: "http://127.0.0.1:8080/api/"}, nil},
		{"neither", Config{}, []string{"token"}},
		{"both", Config{Token: "xoxb-1", WebhookURL: hook}, []string{"webhook_url"}},
		{"token file and webhook file", Config{TokenFile: "a", WebhookURLFile: "b"}, []string{"webhook_url"}},
		{"not a slack token", Config{Token: "8f14e45fceea167a5a36dedd4bea2543"}, []string{"token"}},
		{"token with newline", Config{Token: "xoxb-1-2\n"}, []string{"token"}},
		{"webhook plain http", Config{WebhookURL: "http://hooks.example.com/services/SECRETPART123"}, []string{"webhook_url"}},
		{"webhook without scheme", Config{WebhookURL: "hooks.slack.com/services/SECRETPART123"}, []string{"webhook_url"}},
		{"api url ftp", Config{Token: "xoxb-1", APIURL: "ftp://slack.com/api/"}, []string{"api_url"}},
		{"api url plain http", Config{Token: "xoxb-1", APIURL: "http://slack.example.com/api/"}, []string{"api_url"}},
		{"api url query", Config{Token: "xoxb-1", APIURL: "https://slack.com/api/?x=1"}, []string{"api_url"}},
		{"negative timeout", Config{Token: "xoxb-1", Timeout: -time.Second}, []string{"timeout"}},
		{"negative rate", Config{Token: "xoxb-1", PerDestination: -1}, []string{"per_destination_rate"}},
		{"NaN rate", Config{Token: "xoxb-1", PerDestination: math.NaN()}, []string{"per_destination_rate"}},
		{"all at once", Config{APIURL: "ftp://x/", Timeout: -1, PerDestination: -2},
			[]string{"token", "api_url", "timeout", "per_destination_rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.cfg.Validate()
			var paths []string
			for _, e := range l {
				paths = append(paths, e.Path)
				if e.Msg == "" {
					t.Errorf("%s: empty message", e.Path)
				}
			}
			if !slices.Equal(paths, tt.paths) {
				t.Fatalf("paths = %v, want %v\n%v", paths, tt.paths, l.Err())
			}
			if err := l.Err(); err != nil {
				msg := err.Error()
				for _, secret := range []string{tt.cfg.Token.Reveal(), tt.cfg.WebhookURL.Reveal(), "SECRETPART123"} {
					if secret != "" && strings.Contains(msg, secret) {
						t.Errorf("error shows a secret: %s", msg)
					}
				}
			}
		})
	}
}

func TestConfig_Validate_NamesValueAndFix(t *testing.T) {
	l := Config{Token: "xoxb-1", APIURL: "http://slack.example.com/api/"}.Validate()
	if len(l) != 1 {
		t.Fatalf("got %v", l.Err())
	}
	msg := l[0].Error()
	for _, want := range []string{"api_url", "http://slack.example.com/api/", "https://slack.com/api/"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not mention %q", msg, want)
		}
	}
}

func TestConfig_Defaults_Fill(t *testing.T) {
	tests := []struct {
		name    string
		in      Config
		wantURL string
	}{
		{"empty", Config{}, DefaultAPIURL},
		{"slash added", Config{APIURL: "http://127.0.0.1:9/api"}, "http://127.0.0.1:9/api/"},
		{"slash kept", Config{APIURL: "http://127.0.0.1:9/"}, "http://127.0.0.1:9/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			c.Defaults()
			if c.APIURL != tt.wantURL || c.Timeout != 10*time.Second || c.PerDestination != 1 {
				t.Fatalf("got api_url %q timeout %v rate %v", c.APIURL, c.Timeout, c.PerDestination)
			}
		})
	}
	c := Config{Timeout: time.Second, PerDestination: 5}
	c.Defaults()
	if c.Timeout != time.Second || c.PerDestination != 5 {
		t.Fatalf("defaults overwrote set values: %+v", c)
	}
}

func TestNew_Config_Invalid(t *testing.T) {
	_, err := New("ops-slack", Config{Token: "xoxb-secret-value", WebhookURL: "https://hooks.slack.com/services/T/B/SECRETPART123"})
	if err == nil {
		t.Fatal("New accepted token and webhook_url together")
	}
	l, ok := fields.AsList(err)
	if !ok || len(l) != 1 || l[0].Path != "webhook_url" {
		t.Fatalf("error %v is not a field list naming webhook_url", err)
	}
	if strings.Contains(err.Error(), "xoxb-secret-value") || strings.Contains(err.Error(), "SECRETPART123") {
		t.Fatalf("error shows a secret: %v", err)
	}
	if !strings.Contains(err.Error(), "ops-slack") {
		t.Errorf("error does not name the instance: %v", err)
	}
}

func TestNew_TokenFile_Missing(t *testing.T) {
	_, err := New("ops", Config{TokenFile: filepath.Join(t.TempDir(), "absent")})
	if err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("err = %v, want one naming token_file", err)
	}
}
