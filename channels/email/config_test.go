package email

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crier-dev/crier/channels/channeltest"
	"github.com/crier-dev/crier/internal/fields"
)

func validConfig() Config {
	return Config{Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS, From: "incidents@example.com"}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Config)
		paths []string // yaml keys that must be reported, in order
	}{
		{"valid", func(*Config) {}, nil},
		{"valid with auth and display name", func(c *Config) {
			c.Username, c.Password, c.From = "bot", fields.Secret(testPassword), `"Incident Desk" <incidents@example.com>`
		}, nil},
		{"valid tls none with auth to loopback", func(c *Config) {
			c.Host, c.TLS, c.Username, c.Password = "127.0.0.1", TLSNone, "bot", fields.Secret(testPassword)
		}, nil},
		{"everything missing", func(c *Config) { *c = Config{} }, []string{"host", "port", "tls", "from"}},
		{"missing host", func(c *Config) { c.Host = "" }, []string{"host"}},
		{"host with port", func(c *Config) { c.Host = "smtp.example.com:587" }, []string{"host"}},
		{"host with space", func(c *Config) { c.Host = "smtp example.com" }, []string{"host"}},
		{"missing port", func(c *Config) { c.Port = 0 }, []string{"port"}},
		{"port too big", func(c *Config) { c.Port = 70000 }, []string{"port"}},
		{"port negative", func(c *Config) { c.Port = -25 }, []string{"port"}},
		{"missing tls", func(c *Config) { c.TLS = "" }, []string{"tls"}},
		{"bad tls word", func(c *Config) { c.TLS = "ssl" }, []string{"tls"}},
		{"tls word wrong case", func(c *Config) { c.TLS = "STARTTLS" }, []string{"tls"}},
		{"missing from", func(c *Config) { c.From = "" }, []string{"from"}},
		{"bad from", func(c *Config) { c.From = "incidents at example.com" }, []string{"from"}},
		{"two froms", func(c *Config) { c.From = "a@example.com, b@example.com" }, []string{"from"}},
		{"bad reply_to", func(c *Config) { c.ReplyTo = "desk@" }, []string{"reply_to"}},
		{"username without password", func(c *Config) { c.Username = "bot" }, []string{"password"}},
		{"password without username", func(c *Config) { c.Password = fields.Secret(testPassword) }, []string{"username"}},
		{"password_file without username", func(c *Config) { c.PasswordFile = "/run/secrets/smtp" }, []string{"username"}},
		{"unknown auth", func(c *Config) { c.Username, c.Password, c.Auth = "bot", fields.Secret(testPassword), "ntlm" }, []string{"auth"}},
		{"auth without username", func(c *Config) { c.Auth = AuthLogin }, []string{"auth"}},
		{"password in clear to a remote host", func(c *Config) { c.TLS, c.Username, c.Password = TLSNone, "bot", fields.Secret(testPassword) }, []string{"tls"}},
		{"helo with space", func(c *Config) { c.HELO = "my host" }, []string{"helo"}},
		{"message_id_domain with @", func(c *Config) { c.MessageIDDomain = "a@b" }, []string{"message_id_domain"}},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"timeout"}},
		{"negative pool_size", func(c *Config) { c.PoolSize = -1 }, []string{"pool_size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(&c)
			c.Defaults()
			got := c.Validate()
			var paths []string
			for _, e := range got {
				paths = append(paths, e.Path)
				if strings.Contains(e.Error(), testPassword) {
					t.Errorf("error shows the password: %v", e)
				}
			}
			if strings.Join(paths, ",") != strings.Join(tt.paths, ",") {
				t.Errorf("problems at %q, want %q:\n%v", paths, tt.paths, got.Err())
			}
		})
	}
}

func TestConfig_Validate_NamesValueAndFix(t *testing.T) {
	c := validConfig()
	c.TLS, c.Port = "ssl", 70000
	got := c.Validate().Err().Error()
	for _, want := range []string{`tls: "ssl"`, "starttls", `port: "70000"`, "1-65535"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %q do not mention %q", got, want)
		}
	}
}

func TestConfig_Defaults(t *testing.T) {
	c := Config{From: `"Desk" <desk@alerts.example.com>`, Username: "bot"}
	c.Defaults()
	want := Config{From: c.From, Username: "bot", Auth: AuthPlain, HELO: "alerts.example.com",
		MessageIDDomain: "alerts.example.com", Timeout: 15 * time.Second, PoolSize: 4}
	if c != want {
		t.Errorf("Defaults() = %+v, want %+v", c, want)
	}
	if c.Port != 0 || c.TLS != "" {
		t.Errorf("Defaults() chose port %d / tls %q; both must stay required", c.Port, c.TLS)
	}
}

func TestNew_InvalidConfig(t *testing.T) {
	_, err := New("exec-email", Config{Password: fields.Secret(testPassword)})
	l, ok := fields.AsList(err)
	if !ok || len(l) < 4 {
		t.Fatalf("New error = %v, want a fields.List with every problem", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestNew_PasswordFile(t *testing.T) {
	p := channeltest.NewSMTPPeer(t, channeltest.SMTPAuth("crier", testPassword))
	file := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(file, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSender(t, peerConfig(p, func(c *Config) { c.Password, c.PasswordFile = "", file }))
	send(t, s, message("k"))
	if got := p.Messages()[0].Auth; got != "crier" {
		t.Errorf("peer saw AUTH as %q, want crier", got)
	}

	_, err := New("x", peerConfig(p, func(c *Config) { c.Password, c.PasswordFile = "", file+".missing" }))
	if err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("New with a missing password_file: %v, want an error naming password_file", err)
	}
}
